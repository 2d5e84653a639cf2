"""Green/blue bot deploys (shadow lease, shadow-compare, atomic swap) and service deploys."""
