"""The GraphQL API: thin types and resolvers over ``app.services``."""
