"""The enumerations event payloads carry, as the producing services define them. A payload with any
other value is not a valid event: a producer cannot publish it, and a consumer refuses it (the
handler raises, so the event is dead-lettered rather than stored). They appear as `enum` in the
JSON Schemas and docs/asyncapi.json."""

from typing import Literal

CustomerType = Literal["INDIVIDUAL", "COMPANY"]
CustomerStatus = Literal["LEAD", "PROSPECT", "CUSTOMER", "INACTIVE"]
CustomerPriority = Literal["LOW", "MEDIUM", "HIGH", "CRITICAL"]

OpportunityStatus = Literal["OPEN", "WON", "LOST", "CANCELLED"]
InvoiceStatus = Literal["DRAFT", "ISSUED", "PAID", "VOID"]

TicketType = Literal["QUESTION", "PROBLEM", "REQUEST", "INCIDENT"]
TicketStatus = Literal["NEW", "OPEN", "PENDING", "ESCALATED", "RESOLVED", "CLOSED"]
TicketPriority = Literal["LOW", "NORMAL", "HIGH", "URGENT"]
CommunicationDirection = Literal["INBOUND", "OUTBOUND"]
CommunicationChannel = Literal["EMAIL", "PHONE", "CHAT", "PORTAL", "NOTE"]

ActivityType = Literal["CALL", "EMAIL", "MEETING", "TASK", "NOTE", "SMS", "DEMO"]

CampaignType = Literal["EMAIL", "SMS", "SOCIAL", "WEBINAR", "TRADE_SHOW", "DIRECT_MAIL", "OTHER"]
CampaignStatus = Literal["PLANNING", "ACTIVE", "PAUSED", "COMPLETED", "CANCELLED"]
