"""delivery: the events each caller may read, pushed to its signed webhooks and served as a feed."""
