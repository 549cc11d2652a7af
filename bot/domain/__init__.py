"""Plain domain objects and rules of the call center."""
