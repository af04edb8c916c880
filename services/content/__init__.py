"""Information sections (I1–I5): online shop, FAQ, surveys, promotions, offices, appointments, callbacks.

Customers read the sections and act on them (order an item, answer a survey, book and cancel an office
appointment, ask to be called back); the ADMIN role manages the content. One module per section; rules
live here, no GraphQL.
"""
