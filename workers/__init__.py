"""Workers: consume a data plane's commands, run the step machine of each change, and drive the
runtime of the data plane (``workers.runtimes``). The API never imports this package."""
