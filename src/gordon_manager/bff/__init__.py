"""Console reads (BFF): portfolio, performance, overlays, data sources and pipeline, exchange ping."""
