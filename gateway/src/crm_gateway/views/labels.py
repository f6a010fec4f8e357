"""Labels of the seed's view definitions in English and in the seed's own Chinese.

The seed's definitions are kept as written (Chinese); English is the default answer and the seed's
text is served to callers who ask for Chinese (`Accept-Language: zh`). Every label the seed carries
has an English entry here (a test checks it), so a renderer never shows a mix of both.
"""

from typing import Any, Literal, get_args

LABEL_KEYS = ("displayName", "title", "label")

ENGLISH = {
    "CRM仪表盘": "CRM Dashboard",
    "销售指标": "Sales metrics",
    "总收入": "Total revenue",
    "开放机会": "Open opportunities",
    "转化率": "Conversion rate",
    "销售管道": "Sales pipeline",
    "最近活动": "Recent activities",
    "重点客户": "Top customers",
    "客户列表": "Customer list",
    "客户编号": "Customer number",
    "客户名称": "Customer name",
    "类型": "Type",
    "状态": "Status",
    "邮箱": "Email",
    "负责人": "Assigned to",
    "总价值": "Total value",
    "最后联系": "Last contact",
    "创建时间": "Created",
    "线索": "Lead",
    "潜在客户": "Prospect",
    "客户": "Customer",
    "非活跃": "Inactive",
    "个人": "Individual",
    "公司": "Company",
    "新增客户": "New customer",
    "导入客户": "Import customers",
    "查看详情": "View details",
    "编辑": "Edit",
    "转换": "Convert",
    "标题": "Title",
    "金额": "Amount",
    "概率": "Probability",
    "预计成交": "Expected close",
    "添加活动": "Add activity",
}

# The languages a user may choose (their stored preference, `PATCH /api/v1/me`) and a caller may ask for.
Locale = Literal["en", "zh"]
LANGUAGES: tuple[str, ...] = get_args(Locale)


def preferred_language(accept_language: str | None) -> str:
    """`zh` when the caller prefers Chinese over English (RFC 9110 quality values), else `en`."""
    best, best_q = "en", 0.0
    for part in (accept_language or "").split(","):
        tag, _, params = part.strip().partition(";")
        q = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        primary = tag.strip().lower().split("-")[0]
        if primary in LANGUAGES and q > best_q:
            best, best_q = primary, q
    return best


def localized(definition: Any, language: str) -> Any:
    """The definition with its labels in `language` (the seed's text for `zh`)."""
    if language == "zh":
        return definition
    if isinstance(definition, dict):
        return {
            key: ENGLISH.get(value, value)
            if key in LABEL_KEYS and isinstance(value, str)
            else localized(value, language)
            for key, value in definition.items()
        }
    if isinstance(definition, list):
        return [localized(item, language) for item in definition]
    return definition
