"""The bus (RabbitMQ through aio-pika, or in-process), the outbox relay, the event fan-out."""
