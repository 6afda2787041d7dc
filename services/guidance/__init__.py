"""guidance: stations, families, home visits, sessions and resources for every child's age."""
