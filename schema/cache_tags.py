"""Which GraphQL types show which kind of reference data (the result cache's dependencies).

A cached customer answer depends on a :class:`services.unit_of_work.Reference` kind when its query
selects a field of, or returning, a type listed here for that kind (or a listed ``Type.field``); a write
that declares the kind (``touch(session, reference=Reference.FAQ)``) makes exactly those answers stale.
A new type that shows reference data belongs here (``tests/test_unit_of_work.py`` proves every mutation
leaves nothing stale).
"""

from __future__ import annotations

from services.unit_of_work import Reference

REFERENCE_TYPES: dict[str, Reference] = {
    "FaqEntry": Reference.FAQ,
    "Query.faqCategories": Reference.FAQ,
    "AssistantAnswer": Reference.FAQ,
    "AssistantFaqAnswer": Reference.FAQ,
    "ShopCategory": Reference.SHOP,
    "ShopItem": Reference.SHOP,
    "Survey": Reference.SURVEYS,
    "SurveySection": Reference.SURVEYS,
    "SurveyQuestion": Reference.SURVEYS,
    "SurveyOption": Reference.SURVEYS,
    "Promotion": Reference.PROMOTIONS,
    "PromotionSection": Reference.PROMOTIONS,
    "Office": Reference.OFFICES,
    "OfficeSlot": Reference.OFFICES,
    "OpeningDay": Reference.OFFICES,
    "Branch": Reference.BRANCHES,
    "Supplier": Reference.BRANCHES,
    "Service": Reference.BRANCHES,
    "Tariff": Reference.BRANCHES,
    "TariffDocument": Reference.BRANCHES,
}
"""GraphQL type name (or ``Type.field`` for a field of plain values) → the kind of reference data it shows."""
