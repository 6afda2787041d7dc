from pydantic import Field
from pydantic_settings import SettingsConfigDict

from shared.settings import PersonalDataSettings
from shared.workcalendar import CalendarYear, default_calendars

# What each CCTV event type means for the district. `info` events are stored, never alerted.
DEFAULT_SEVERITIES: dict[str, str] = {
    "heartbeat": "info",
    "motion": "info",
    "prolonged_crying": "medium",
    "fall": "high",
    "intrusion": "high",
    "tamper": "high",
    "video_loss": "high",
    "smoke_fire": "critical",
    "abuse_suspected": "critical",
}


class MonitoringSettings(PersonalDataSettings):
    """Monitoring holds personal data since it takes complaints (the complainant's name and phone),
    so it has keys of its own (`MONITORING_PII_*`)."""

    model_config = SettingsConfigDict(env_prefix="MONITORING_", extra="ignore")

    service_name: str = "monitoring"

    # Ingest.
    max_batch_events: int = Field(default=1000, ge=1, le=10_000)
    max_batch_bytes: int = Field(default=4 * 1024 * 1024, ge=1024)
    # An event stamped further ahead than this is refused (a device clock gone wrong).
    max_clock_skew_seconds: float = Field(default=300, ge=0)
    # Older than this is refused too: it would be purged at once.
    event_retention_days: float = Field(default=90, gt=0)
    severities: dict[str, str] = Field(default_factory=lambda: dict(DEFAULT_SEVERITIES))
    # Repeats of one type on one camera within this window fold into the open alert.
    fold_window_seconds: float = Field(default=600, ge=0)
    # A camera of an open facility silent for longer than this, during opening hours: offline alert.
    offline_after_seconds: float = Field(default=900, gt=0)
    timezone: str = "Asia/Shanghai"
    # Cameras' last-seen times are gathered in memory and written this often (one UPDATE per camera
    # heard): far below `offline_after_seconds`, far above a batch's few milliseconds.
    presence_flush_seconds: float = Field(default=30, gt=0)
    # NATS ingest for video systems that publish to cradle.ingest.cctv.<facility_id>.
    ingest_stream_max_age_days: float = Field(default=7, gt=0)
    ingest_fetch_batch: int = Field(default=500, ge=1, le=5000)
    ingest_consumer_enabled: bool = True

    # Casework deadlines (hours).
    report_deadline_hours_urgent: float = Field(default=2, gt=0)  # abuse, injury, illness outbreak
    report_deadline_hours_other: float = Field(default=24, gt=0)
    finding_deadline_hours: float = Field(default=72, gt=0)
    # Risk score: points per occurrence of each reason (staffing_shortfall: per missing carer),
    # capped at 100 (casework/service/risk.py); a reason left out of an override counts nothing.
    risk_weights: dict[str, float] = Field(
        default_factory=lambda: {
            "open_critical_alerts": 20,
            "confirmed_abuse": 40,
            "confirmed_incidents": 15,
            "failed_inspections": 20,
            "rectify_inspections": 5,
            "overdue_rectifications": 15,
            "bans": 20,
            "hire_blocked": 10,
            "staffing_out_of_ratio": 10,
            "staffing_shortfall": 2,
            "reported_late": 5,
            "founded_complaints": 5,
            "open_complaints": 2,
        }
    )
    risk_lookback_days: int = Field(default=365, ge=1)
    risk_level_medium: float = Field(default=25, gt=0)
    risk_level_high: float = Field(default=50, gt=0)
    # 双随机 draws: facilities not yet inspected on site this year form the first tier; within a tier
    # a facility's weight is 1 + risk score / plan_risk_divisor.
    plan_risk_divisor: float = Field(default=25, gt=0)
    plan_max_sample_size: int = Field(default=500, ge=1)

    # Complaints (投诉): acknowledged within 1 and answered within 15 working days of Shanghai's
    # calendar (shared/workcalendar.py), each year's holidays and make-up workdays given here; the
    # defaults are the State Council's notices for 2025 and 2026.
    complaint_acknowledge_working_days: int = Field(default=1, ge=1, le=30)
    complaint_answer_working_days: int = Field(default=15, ge=1, le=120)
    working_calendar: dict[int, CalendarYear] = Field(default_factory=default_calendars)

    # Background jobs (offline cameras, retention, deadlines); 0 = not scheduled (tests call them).
    jobs_interval_seconds: float = Field(default=60, ge=0)
