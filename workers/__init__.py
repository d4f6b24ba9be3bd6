"""Workers: consume commands from the bus, run the step machine of a promotion, and drive the
runtimes of a data plane. They arrive with the promotion engine; the package is reserved so
that the layering (the API never imports ``workers``) holds from the start."""
