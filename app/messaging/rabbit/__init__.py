"""The bus on RabbitMQ, through aio-pika, by concern:

- ``bus.py``: ``RabbitBus``, on one robust connection: publishing, consumers, requests;
- ``topology.py``: the exchanges and queues it declares, with the queue arguments and why;
- ``publishing.py``: a publish that returns once the broker confirmed it;
- ``consuming.py``: consumers, and how each kind of queue settles a delivery (acknowledge,
  requeue after a pause, dead-letter, answer); a stop that drains;
- ``requests.py``: the asking side of requests and answers;
- ``wire.py``: a ``Message`` as an AMQP message and back.
"""

from app.messaging.rabbit.bus import RabbitBus
from app.messaging.rabbit.consuming import RabbitConsumer
from app.messaging.rabbit.publishing import PublishRefused
from app.messaging.rabbit.topology import QUEUE_DELIVERY_LIMIT, command_queue_arguments

__all__ = [
    "QUEUE_DELIVERY_LIMIT",
    "PublishRefused",
    "RabbitBus",
    "RabbitConsumer",
    "command_queue_arguments",
]
