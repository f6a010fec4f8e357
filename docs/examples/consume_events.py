"""Consume the CRM's domain events from RabbitMQ in another system: a complete, minimal consumer.

    pip install aio-pika
    python consume_events.py --queue billing.crm-events 'customer.*' opportunity.won

It declares its own durable quorum queue bound to the CRM's topic exchange, with a dead-letter queue
for messages it keeps failing on, prints each event as one JSON line and acknowledges it after
handling. Delivery is at least once: a real consumer records each CloudEvent `id` it has applied in
the same transaction as its change, and skips ids it has seen (see docs/events.md).

Settings: --url (or CRM_AMQP_URL), --namespace (or CRM_EVENTS_NAMESPACE; the CRM operator's prefix
of the exchange name, empty by default), --max-messages to stop after N events (for scripts and tests).
"""

import argparse
import asyncio
import json
import os

import aio_pika


async def consume(url: str, namespace: str, queue_name: str, keys: list[str], limit: int | None) -> None:
    connection = await aio_pika.connect_robust(url)
    async with connection:
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=50)
        exchange = await channel.declare_exchange(
            f"{namespace}crm.events", aio_pika.ExchangeType.TOPIC, durable=True
        )
        # Messages refused more than 5 times go to <queue>.dlq instead of looping forever.
        dead_letters = await channel.declare_exchange(
            f"{queue_name}.dlx", aio_pika.ExchangeType.DIRECT, durable=True
        )
        parked = await channel.declare_queue(
            f"{queue_name}.dlq", durable=True, arguments={"x-queue-type": "quorum"}
        )
        await parked.bind(dead_letters, routing_key=queue_name)
        queue = await channel.declare_queue(
            queue_name,
            durable=True,
            arguments={
                "x-queue-type": "quorum",
                "x-delivery-limit": 5,
                "x-dead-letter-exchange": dead_letters.name,
                "x-dead-letter-routing-key": queue_name,
            },
        )
        for key in keys:
            await queue.bind(exchange, routing_key=key)
        print(json.dumps({"ready": queue_name, "exchange": exchange.name, "keys": keys}), flush=True)

        seen = 0
        async with queue.iterator() as messages:
            async for message in messages:
                # An exception inside process() rejects the message for redelivery.
                async with message.process(requeue=True):
                    event = json.loads(message.body)
                    print(
                        json.dumps({"id": event["id"], "type": event["type"], "data": event["data"]}),
                        flush=True,
                    )
                seen += 1
                if limit is not None and seen >= limit:
                    return


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "keys", nargs="*", default=["#"], help="routing keys, e.g. 'customer.*' opportunity.won"
    )
    parser.add_argument("--url", default=os.environ.get("CRM_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/"))
    parser.add_argument("--namespace", default=os.environ.get("CRM_EVENTS_NAMESPACE", ""))
    parser.add_argument("--queue", default="example.crm-events", help="your own queue's name")
    parser.add_argument("--max-messages", type=int, default=None)
    args = parser.parse_args()
    try:
        asyncio.run(consume(args.url, args.namespace, args.queue, args.keys, args.max_messages))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
