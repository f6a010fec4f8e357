"""The dashboard's widgets as typed models, so SDKs generated from /openapi.json get real classes.
Money is a decimal string beside its currency; every amount is per currency."""

import uuid
from datetime import datetime
from typing import Literal

from crm_common.schemas import ApiModel
from pydantic import Field

WidgetStatus = Literal["ok", "partial", "unavailable", "forbidden"]


class MoneyTotal(ApiModel):
    currency: str
    amount: str = Field(description='Decimal string, e.g. "1250.00".')


class Conversion(ApiModel):
    leads: int
    prospects: int
    customers: int
    conversion_rate: str | None = Field(description="customers / (leads + prospects + customers), in %.")


class SalesMetrics(ApiModel):
    total_revenue: list[MoneyTotal] | None = Field(description="Won opportunities, per currency.")
    open_opportunities: int | None
    conversion_rate: str | None
    conversion: Conversion | None = None
    unavailable: list[str] = Field(description="Metrics missing because their service did not answer.")


class FunnelTotal(ApiModel):
    currency: str
    count: int
    amount: str
    weighted_amount: str = Field(description="amount x the stage's probability.")


class FunnelStage(ApiModel):
    stage_id: uuid.UUID
    label: str
    color: str | None
    probability: int
    is_won: bool
    is_lost: bool
    count: int
    totals: list[FunnelTotal]


class PipelineFunnel(ApiModel):
    stages: list[FunnelStage]


class RecentActivity(ApiModel):
    id: uuid.UUID
    type: str
    subject: str
    status: str
    customer_id: uuid.UUID | None
    customer_name: str | None
    owner_id: uuid.UUID
    owner_name: str | None
    start_date: datetime
    completed_at: datetime | None
    created_at: datetime


class RecentActivities(ApiModel):
    items: list[RecentActivity] = Field(description="The 10 newest, newest first.")
    time_zone: str | None


class TopCustomer(ApiModel):
    id: uuid.UUID
    customer_number: str
    full_name: str
    lifetime_value: str = Field(description="Won value in the group's currency.")
    assigned_to_id: uuid.UUID | None
    assigned_to_name: str | None
    last_contact_date: datetime | None


class CurrencyTopCustomers(ApiModel):
    currency: str
    items: list[TopCustomer]


class TopCustomers(ApiModel):
    currencies: list[CurrencyTopCustomers] = Field(
        description="A top 5 per currency: values in different currencies are never compared."
    )


class _Widget(ApiModel):
    status: WidgetStatus
    reason: str | None = Field(default=None, description="Why the widget is not `ok`.")


class SalesMetricsWidget(_Widget):
    data: SalesMetrics | None = None


class PipelineFunnelWidget(_Widget):
    data: PipelineFunnel | None = None


class RecentActivitiesWidget(_Widget):
    data: RecentActivities | None = None


class TopCustomersWidget(_Widget):
    data: TopCustomers | None = None


class DashboardWidgets(ApiModel):
    sales_metrics: SalesMetricsWidget
    pipeline_funnel: PipelineFunnelWidget
    recent_activities: RecentActivitiesWidget
    top_customers: TopCustomersWidget


class Dashboard(ApiModel):
    generated_at: datetime
    widgets: DashboardWidgets
