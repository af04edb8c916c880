"""GraphQL of the information sections (I1–I5), one module per section.

Shop, FAQ, surveys, promotions, and contacts with offices, appointments and callbacks.
"""

from schema.content.faq import FaqMutations, FaqQueries
from schema.content.offices import OfficesMutations, OfficesQueries
from schema.content.promotions import PromotionsMutations, PromotionsQueries
from schema.content.shop import ShopMutations, ShopQueries
from schema.content.surveys import SurveysMutations, SurveysQueries

QUERIES: tuple[type, ...] = (ShopQueries, FaqQueries, SurveysQueries, PromotionsQueries, OfficesQueries)
"""Each section's query class (their fields join the root Query)."""

MUTATIONS: tuple[type, ...] = (
    ShopMutations,
    FaqMutations,
    SurveysMutations,
    PromotionsMutations,
    OfficesMutations,
)
"""Each section's mutation class (their fields join the root Mutation)."""
