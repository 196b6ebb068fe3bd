from datetime import UTC, datetime


def now() -> datetime:
    """Every timestamp crab makes: timezone-aware UTC."""
    return datetime.now(UTC)
