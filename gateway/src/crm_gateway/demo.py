"""`crm demo`: a sample company for evaluators, loaded through the public API of a running CRM.

Everything goes through the same endpoints a client uses, so every event flows and the dashboard,
views, timelines, forecasts and campaign metrics show something on the first run. The data is
deterministic (a fixed random seed): names, amounts and statuses are the same on every machine; only
dates are relative to today, so there are past and upcoming activities.
"""

import asyncio
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx

SEED = 20261206
# How many of each at scale 1; tests load a tenth.
SIZES = {"customers": 240, "opportunities": 90, "activities": 160, "tickets": 48}
CURRENCIES = ("USD", "EUR", "GBP")

FIRST = "Ada Ben Chloe Dev Elena Farid Grace Hiro Ines Jonas Kai Lena Marco Nia Omar Priya Quinn Rosa".split()
LAST = "Alvarez Brooks Chen Dubois Eriksen Fischer Garcia Haddad Ito Jensen Kowalski Lopez Moreau".split()
COMPANY_A = "Blue Bright Cedar Delta Echo Falcon Granite Harbor Iron Juniper Kite Lumen Maple North".split()
COMPANY_B = "Analytics Bakery Logistics Robotics Foods Health Labs Media Energy Studio Works Systems".split()
INDUSTRIES = ("Software", "Retail", "Manufacturing", "Healthcare", "Logistics", "Finance", "Media")
CITIES = (("Berlin", "DE"), ("London", "GB"), ("Austin", "US"), ("Lyon", "FR"), ("Toronto", "CA"))

# (email, full name, role, team key); passwords are drawn from the seeded generator and printed.
USERS = (
    ("maya.manager@demo.example", "Maya Okafor", "sales_manager", "east"),
    ("sam.rep@demo.example", "Sam Whitaker", "sales_rep", "east"),
    ("tara.rep@demo.example", "Tara Lindqvist", "sales_rep", "east"),
    ("victor.rep@demo.example", "Victor Santos", "sales_rep", "west"),
    ("wen.rep@demo.example", "Wen Zhao", "sales_rep", "west"),
    ("sofia.support@demo.example", "Sofia Marino", "support_agent", "support"),
    ("liam.support@demo.example", "Liam Byrne", "support_agent", "support"),
    ("mia.marketing@demo.example", "Mia Novak", "marketer", None),
    ("rhea.readonly@demo.example", "Rhea Patel", "read_only", None),
)
TEAMS = {
    "east": ("Sales East", "SALES"),
    "west": ("Sales West", "SALES"),
    "support": ("Customer Support", "SUPPORT"),
}
PRODUCTS = (
    ("Starter plan", "STARTER", Decimal("49.00")),
    ("Growth plan", "GROWTH", Decimal("199.00")),
    ("Enterprise plan", "ENTERPRISE", Decimal("990.00")),
    ("Onboarding package", "ONBOARD", Decimal("1500.00")),
    ("Premium support", "SUPPORT", Decimal("300.00")),
)


class DemoError(Exception):
    """A refusal the command reports in one line (no traceback)."""


@dataclass
class Loaded:
    users: list[tuple[str, str, str]] = field(default_factory=list)  # email, role, password
    counts: dict[str, int] = field(default_factory=dict)

    def count(self, what: str, n: int = 1) -> None:
        self.counts[what] = self.counts.get(what, 0) + n


class Api:
    """A thin client: every call must succeed, with short retries where the API asks for them."""

    def __init__(self, client: httpx.AsyncClient, limit: int = 8) -> None:
        self.client = client
        self.gate = asyncio.Semaphore(limit)

    async def call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        async with self.gate:
            for attempt in range(40):
                r = await self.client.request(method, f"/api/v1{path}", **kwargs)
                code = r.json().get("code") if r.headers.get("content-type", "").endswith("json") else None
                # A context may not have heard of a customer created a moment ago; the overload
                # answers say when to come back.
                if (r.status_code == 422 and code == "UNKNOWN_CUSTOMER") or r.status_code in (429, 503):
                    await asyncio.sleep(min(float(r.headers.get("Retry-After", "0.1")), 1.0) * (attempt + 1))
                    continue
                break
            if r.status_code >= 400:
                raise DemoError(f"{method} {path} answered {r.status_code}: {r.text[:300]}")
            return r.json() if r.content else {}


async def _login(base_url: str, email: str, password: str) -> str:
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
        try:
            r = await client.post("/api/v1/auth/token", data={"username": email, "password": password})
        except httpx.HTTPError as exc:
            raise DemoError(f"no CRM answers at {base_url} ({exc}); start it with `make up`") from None
    if r.status_code != 200:
        raise DemoError(f"signing in as {email} failed ({r.status_code}); pass the admin's password")
    token: str = r.json()["access_token"]
    return token


async def load(base_url: str, admin_email: str, admin_password: str) -> Loaded:
    token = await _login(base_url, admin_email, admin_password)
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=base_url, headers=headers, timeout=60) as client:
        return await load_with(client)


async def load_with(client: httpx.AsyncClient, scale: float = 1.0) -> Loaded:
    """Load through a client already signed in as an admin."""
    sizes = {what: max(6, round(n * scale)) for what, n in SIZES.items()}
    return await _load(Api(client), random.Random(SEED), sizes)


async def _load(api: Api, rng: random.Random, sizes: dict[str, int]) -> Loaded:
    loaded = Loaded()
    existing = await api.call("GET", "/users", params={"q": USERS[0][0]})
    if existing.get("total"):
        raise DemoError(
            "the demo company is already loaded here (its users exist); use a fresh data directory"
        )
    now = datetime.now(UTC).replace(microsecond=0)

    users: dict[str, dict[str, Any]] = {}
    for email, name, role, _ in USERS:
        password = "-".join(rng.choice(FIRST + LAST).lower() for _ in range(3)) + f"-{rng.randint(10, 99)}"
        users[email] = await api.call(
            "POST", "/users", json={"email": email, "fullName": name, "roles": [role], "password": password}
        )
        loaded.users.append((email, role, password))
    loaded.count("users", len(users))
    teams: dict[str, dict[str, Any]] = {}
    for key, (name, kind) in TEAMS.items():
        members = [users[u[0]]["id"] for u in USERS if u[3] == key]
        manager = users[USERS[0][0]]["id"] if kind == "SALES" else members[0]
        teams[key] = await api.call(
            "POST", "/teams", json={"name": name, "type": kind, "managerId": manager, "memberIds": members}
        )
    loaded.count("teams", len(teams))
    reps = [(users[u[0]], teams[str(u[3])]) for u in USERS if u[2] in ("sales_rep", "sales_manager")]
    agents = [users[u[0]] for u in USERS if u[2] == "support_agent"]

    campaign = await api.call(
        "POST",
        "/campaigns",
        json={
            "name": "Spring product webinar",
            "type": "WEBINAR",
            "currency": "USD",
            "budget": "6000.00",
            "actualCost": "4200.00",
            "expectedLeads": 60,
            "expectedRevenue": "50000.00",
            "startDate": (now - timedelta(days=30)).isoformat(),
            "endDate": (now + timedelta(days=30)).isoformat(),
            "channels": ["email", "webinar"],
            "ownerId": users["mia.marketing@demo.example"]["id"],
        },
    )
    await api.call("POST", f"/campaigns/{campaign['id']}/activate", json={})
    loaded.count("campaigns")

    products = {
        currency: [
            await api.call(
                "POST",
                "/products",
                json={
                    "name": f"{name} ({currency})",
                    "code": f"{code}-{currency}",
                    "price": str(price),
                    "currency": currency,
                    "category": "Subscriptions" if "plan" in name else "Services",
                },
            )
            for name, code, price in PRODUCTS
        ]
        for currency in CURRENCIES
    }
    loaded.count("products", sum(len(p) for p in products.values()))

    customers = await asyncio.gather(
        *(_customer(api, rng, i, reps, campaign) for i in range(sizes["customers"]))
    )
    loaded.count("customers", len(customers))

    # The campaign's audience: a third of the customers, with a realistic funnel.
    audience = customers[::3]
    pending = [c["id"] for c in audience]
    for _ in range(50):  # customers campaign-svc has not heard of yet are refused; ask again
        result = await api.call("POST", f"/campaigns/{campaign['id']}/targets", json={"customerIds": pending})
        pending = [r["customerId"] for r in result["refused"] if r["code"] == "UNKNOWN_CUSTOMER"]
        if not pending:
            break
        await asyncio.sleep(0.2)
    interactions = []
    for n, c in enumerate(audience):
        steps = ["SENT", "DELIVERED", "OPENED", "CLICKED", "RESPONDED"][: 1 + (n * 7 % 5)]
        if n % 23 == 0:
            steps = ["BOUNCED"]
        for k, kind in enumerate(steps):
            at = now - timedelta(days=20) + timedelta(hours=k * 6 + n % 12)
            interactions.append(
                {
                    "customerId": c["id"],
                    "kind": kind,
                    "occurredAt": at.isoformat(),
                    "externalId": f"demo-{n}-{kind}",
                }
            )
    await api.call("POST", f"/campaigns/{campaign['id']}/interactions", json={"interactions": interactions})
    loaded.count("campaign targets", len(audience))

    stages = (await api.call("GET", "/stages"))["items"]
    opportunities = await asyncio.gather(
        *(_opportunity(api, rng, i, customers, stages, products, now) for i in range(sizes["opportunities"]))
    )
    for outcome in opportunities:
        loaded.count(f"opportunities {outcome}")

    await asyncio.gather(*(_activity(api, rng, i, customers, now) for i in range(sizes["activities"])))
    loaded.count("activities", sizes["activities"])
    statuses = await asyncio.gather(
        *(_ticket(api, rng, i, customers, agents) for i in range(sizes["tickets"]))
    )
    for status in statuses:
        loaded.count(f"tickets {status}")
    return loaded


async def _customer(
    api: Api,
    rng: random.Random,
    i: int,
    reps: list[tuple[dict[str, Any], dict[str, Any]]],
    campaign: dict[str, Any],
) -> dict[str, Any]:
    # Draw everything before the first await: the seeded generator then gives the same data
    # whatever order the concurrent requests finish in.
    first, last = FIRST[i % len(FIRST)], LAST[(i * 7) % len(LAST)]
    owner, team = reps[i % len(reps)]
    city, country = CITIES[i % len(CITIES)]
    body = {
        "email": f"customer{i:03d}@demo.example",
        "status": rng.choices(("LEAD", "PROSPECT", "CUSTOMER"), weights=(5, 3, 3))[0],
        "priority": rng.choice(("LOW", "MEDIUM", "MEDIUM", "HIGH", "CRITICAL")),
        "source": rng.choice(("website", "referral", "event", "cold call")),
        "tags": rng.sample(["vip", "newsletter", "partner", "trial", "renewal"], k=rng.randint(0, 2)),
        "assignedToId": owner["id"],
        "teamId": team["id"],
        "phone": f"+1555{1000000 + i:07d}",
        "addresses": [{"type": "BILLING", "city": city, "country": country, "isPrimary": True}],
    }
    if i % 2:
        body |= {"type": "INDIVIDUAL", "firstName": first, "lastName": last}
    else:
        name = f"{COMPANY_A[i % len(COMPANY_A)]} {COMPANY_B[(i // 2) % len(COMPANY_B)]} {i // 28 + 1}"
        body |= {
            "type": "COMPANY",
            "companyName": name,
            "firstName": first,
            "lastName": last,
            "industry": INDUSTRIES[i % len(INDUSTRIES)],
            "employeeCount": rng.choice((12, 45, 120, 800, 4000)),
            "annualRevenue": str(rng.choice((250_000, 1_200_000, 8_000_000, 65_000_000))),
            "website": f"https://{name.lower().replace(' ', '-')}.example",
        }
    if i % 6 == 1:  # leads from the webinar, so its revenue can be attributed
        body["sourceCampaignId"] = campaign["id"]
    return await api.call("POST", "/customers", json=body)


async def _opportunity(
    api: Api,
    rng: random.Random,
    i: int,
    customers: list[dict[str, Any]],
    stages: list[dict[str, Any]],
    products: dict[str, list[dict[str, Any]]],
    now: datetime,
) -> str:
    customer = customers[(i * 5 + 1) % len(customers)]
    currency = CURRENCIES[(i // len(stages)) % len(CURRENCIES)]  # every stage in every currency
    lines = rng.sample(products[currency], k=rng.randint(1, 3))
    quantities = [rng.randint(1, 20) for _ in lines]
    stage = stages[i % len(stages)]
    close = (now + timedelta(days=rng.randint(-20, 90))).date().isoformat()
    opportunity = await api.call(
        "POST",
        "/opportunities",
        json={
            "title": f"{customer.get('companyName') or customer['fullName']}: {lines[0]['name']}",
            "customerId": customer["id"],
            "currency": currency,
            "expectedCloseDate": close,
            "ownerId": customer["assignedToId"],
            "competitors": rng.sample(["Acme CRM", "SellFast", "PipeHub"], k=rng.randint(0, 2)),
        },
    )
    for product, quantity in zip(lines, quantities, strict=True):
        await api.call(
            "POST",
            f"/opportunities/{opportunity['id']}/products",
            json={"productId": product["id"], "quantity": str(quantity), "discount": "0"},
        )
    if stage["isWon"]:
        await api.call("POST", f"/opportunities/{opportunity['id']}/win", json={})
        return "won"
    if stage["isLost"]:
        reason = ("price", "timing", "competitor")[i % 3]
        await api.call("POST", f"/opportunities/{opportunity['id']}/lose", json={"lostReason": reason})
        return "lost"
    await api.call("POST", f"/opportunities/{opportunity['id']}/stage", json={"stageId": stage["id"]})
    return "open"


async def _activity(
    api: Api, rng: random.Random, i: int, customers: list[dict[str, Any]], now: datetime
) -> None:
    customer = customers[(i * 3) % len(customers)]
    kind = ("CALL", "MEETING", "TASK", "EMAIL", "DEMO")[i % 5]
    past = i % 2 == 0
    start = now + timedelta(days=rng.randint(1, 40) * (-1 if past else 1), hours=rng.randint(0, 8))
    outcome = rng.choice(("Interested", "Call back next quarter", "Sent a proposal"))
    activity = await api.call(
        "POST",
        "/activities",
        json={
            "type": kind,
            "subject": f"{kind.title()} with {customer['fullName']}",
            "customerId": customer["id"],
            "startDate": start.isoformat(),
            "duration": 30,
            "ownerId": customer["assignedToId"],
        },
    )
    if past:
        await api.call(
            "POST",
            f"/activities/{activity['id']}/complete",
            json={"outcome": outcome},
        )


async def _ticket(
    api: Api, rng: random.Random, i: int, customers: list[dict[str, Any]], agents: list[dict[str, Any]]
) -> str:
    customer = customers[(i * 11) % len(customers)]
    target = ("NEW", "OPEN", "PENDING", "ESCALATED", "RESOLVED", "CLOSED")[i % 6]
    rating = rng.randint(3, 5)
    ticket = await api.call(
        "POST",
        "/tickets",
        json={
            "subject": rng.choice(
                ("Cannot sign in", "Invoice question", "Export is slow", "Feature request")
            ),
            "description": "Reported by the customer through the portal.",
            "customerId": customer["id"],
            "type": ("QUESTION", "PROBLEM", "REQUEST", "INCIDENT")[i % 4],
            "priority": ("LOW", "NORMAL", "HIGH", "URGENT")[i % 4],
            "assignedToId": agents[i % len(agents)]["id"],
        },
    )
    path = f"/tickets/{ticket['id']}"
    if target == "NEW":
        return target
    # A first reply is the SLA's first response and opens the ticket.
    await api.call(
        "POST", f"{path}/communications", json={"direction": "OUTBOUND", "channel": "EMAIL", "body": "On it."}
    )
    if target == "PENDING":
        await api.call("POST", f"{path}/status", json={"status": "PENDING", "reason": "Waiting for logs"})
    elif target == "ESCALATED":
        await api.call("POST", f"{path}/escalate", json={"reason": "Affects every user of the account"})
    elif target in ("RESOLVED", "CLOSED"):
        await api.call("POST", f"{path}/status", json={"status": "RESOLVED", "resolution": "Fixed"})
        await api.call("POST", f"{path}/satisfaction", json={"rating": rating})
        if target == "CLOSED":
            await api.call("POST", f"{path}/status", json={"status": "CLOSED"})
    return target


def report(loaded: Loaded, base_url: str) -> str:
    lines = [f"Demo company loaded into {base_url}:"]
    lines += [f"  {n:>4} {what}" for what, n in sorted(loaded.counts.items())]
    lines.append("Sign in as any of these users (the dashboard at /api/v1/dashboard shows their view):")
    lines += [f"  {email:<32} {role:<14} {password}" for email, role, password in loaded.users]
    return "\n".join(lines)
