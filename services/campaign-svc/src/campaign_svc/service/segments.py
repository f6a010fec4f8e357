"""Targets from a customer segment: evaluated by customer-svc over HTTP (GET
/api/v1/segments/{id}/customers, paged) with the caller's bearer token. Every page is fetched
before anything is written; customer-svc unreachable (or failing) is a 503, nothing written."""

import uuid

import httpx

from campaign_svc.service.errors import (
    CustomerServiceUnavailable,
    SegmentForbidden,
    SegmentNotFound,
    SegmentTooLarge,
)

PAGE_SIZE = 200


def unavailable(detail: str) -> CustomerServiceUnavailable:
    return CustomerServiceUnavailable(
        f"customer-svc could not evaluate the segment ({detail}); nothing was changed, retry later.",
        headers={"Retry-After": "5"},
    )


async def segment_customers(
    *,
    base_url: str,
    segment_id: uuid.UUID,
    authorization: str | None,
    limit: int,
    timeout: float,
    transport: httpx.AsyncBaseTransport | None = None,
) -> dict[uuid.UUID, tuple[str | None, str | None]]:
    """customer id -> (full name, status) of every customer in the segment."""
    headers = {"Authorization": authorization} if authorization else {}
    found: dict[uuid.UUID, tuple[str | None, str | None]] = {}
    page = 1
    async with httpx.AsyncClient(base_url=base_url, transport=transport, timeout=timeout) as client:
        while True:
            try:
                r = await client.get(
                    f"/api/v1/segments/{segment_id}/customers",
                    params={"page": page, "pageSize": PAGE_SIZE, "sort": "createdAt"},
                    headers=headers,
                )
            except httpx.HTTPError as exc:
                raise unavailable(type(exc).__name__) from None
            if r.status_code == 404:
                raise SegmentNotFound(f"Segment {segment_id} does not exist.")
            if r.status_code in (401, 403):
                raise SegmentForbidden(
                    "customer-svc refused to evaluate the segment for you (customer_access)."
                )
            if r.status_code != 200:
                raise unavailable(f"HTTP {r.status_code}")
            try:
                body = r.json()
                total = int(body["total"])
                items = body["items"]
                if total > limit:
                    raise SegmentTooLarge(
                        f"The segment holds {total} customers; at most {limit} can be added at once.",
                        extra={"limit": limit, "total": total},
                    )
                for item in items:
                    found[uuid.UUID(item["id"])] = (item.get("fullName"), item.get("status"))
            except SegmentTooLarge:
                raise
            except (ValueError, KeyError, TypeError):
                raise unavailable("unexpected answer") from None
            if not items or page * PAGE_SIZE >= total:
                return found
            page += 1
