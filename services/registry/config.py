from decimal import Decimal

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from shared.settings import ServiceSettings


class RegistrySettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="REGISTRY_", extra="ignore")

    service_name: str = "registry"
    # Departments whose approval an application needs (configurable per deployment).
    required_departments: list[str] = Field(default=["EDU", "HEALTH", "FIRE", "SAMR"], min_length=1)
    # National standard (托育机构设置标准（试行）, 2019): at most 10 / 15 / 20 children per class.
    class_size_infant: int = Field(default=10, ge=1)
    class_size_toddler: int = Field(default=15, ge=1)
    class_size_preschool: int = Field(default=20, ge=1)
    # The "15-minute community childcare circle".
    default_search_radius_m: int = Field(default=1000, ge=1)
    max_search_radius_m: int = Field(default=50_000, ge=1)
    public_inspection_years: int = Field(default=3, ge=1)
    # How often each replica asks the database whether any facility changed (services/registry/
    # directory.py): the longest another replica's write stays unseen by this one's searches.
    directory_poll_seconds: float = Field(default=1.0, gt=0)
    # 普惠 fee caps: district code → year → the highest monthly full-day fee in yuan an inclusive
    # facility may charge (REGISTRY_FEE_CAPS as JSON). "*" stands for every district not named; a
    # year without a cap takes the district's latest earlier one. The defaults are placeholders for
    # a deployment to replace with the caps its districts publish.
    fee_caps: dict[str, dict[int, Decimal]] = Field(
        default={
            **{
                code: {2025: Decimal(3500)}
                for code in ("310101", "310104", "310105", "310106", "310107", "310109", "310110")
            },
            "*": {2025: Decimal(3000)},
        }
    )
    # Subsidies: a month closes this many days after it ends (enrolment reports are due by then); its
    # list reads the records as they stood at that instant.
    subsidy_close_days: int = Field(default=10, ge=0, le=60)
