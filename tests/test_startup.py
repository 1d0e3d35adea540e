"""What a command imports at start: each process of the CLI pays for every module it loads (a
cron `run-once`, the two-years simulation's thousands of processes). Timings live in bench/; here
only which modules load, and that the holiday tables loaded the short way are the library's."""
from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import ROOT

HEAVY = ("holidays.countries", "holidays.financial", "apprise", "segno", "jinja2", "email_validator", "twilio",
         "notifier.run.render", "notifier.run.delivery", "notifier.billing.rules", "importlib.metadata")


def loaded_after(code: str) -> list[str]:
    probe = f"import sys\n{code}\nimport json\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.splitlines()[-1])


def test_help_loads_none_of_the_heavy_modules():
    modules = loaded_after("import sys; sys.argv = ['notifier', '--help']\n"
                           "from notifier.cli import main\ntry:\n    main()\nexcept SystemExit:\n    pass")
    assert [m for m in modules if m.startswith(HEAVY)] == []


def test_the_calendars_load_only_brazil_and_b3_and_match_the_library():
    modules = loaded_after("from notifier.billing.calendar import _bank_holidays\nfrom notifier.billing.hours import _national_holidays\n"
                           "_bank_holidays(2026); _national_holidays(2026)")
    assert [m for m in modules if m.startswith(("holidays.countries", "holidays.financial"))] == [
        "holidays.countries.brazil", "holidays.financial.brasil_bolsa_balcao"]
    import holidays
    from notifier.billing.calendar import _bank_holidays
    from notifier.billing.hours import _national_holidays
    for year in (2024, 2025, 2026, 2027, 2028):
        assert _bank_holidays(year) == {d for d in holidays.financial_holidays("BVMF", years=year)
                                        if (d.month, d.day) != (12, 24)}
        assert _national_holidays(year) == set(holidays.country_holidays("BR", years=year))


def test_with_its_caches_warm_a_command_loads_neither_holidays_nor_segno(tmp_path):
    """The holiday tables and Pix QR images kept beside the state (notifier/state/caches.py): a second
    process reads them instead of importing the libraries, and reads what they compute."""
    state = tmp_path / "state.json"
    probe = (f"from pathlib import Path\nfrom notifier.state import caches\ncaches.keep_beside(Path({str(state)!r}))\n"
             "from notifier.billing.calendar import _bank_holidays, national_holidays\nfrom notifier.billing.pixqr import pix_qr_png\n"
             "from notifier.run.render import SAMPLE_PIX\n"
             "tables = {y: sorted(_bank_holidays(y) | national_holidays(y)) for y in (2025, 2026)}\n"
             "image = pix_qr_png(SAMPLE_PIX, caches.folder('pix-qr'))\n")
    first = loaded_after(probe)
    assert "holidays.holiday_base" in first and "segno" in first
    assert sorted(p.name for p in (tmp_path / "state.json.cache").iterdir()) == ["holidays", "pix-qr"]
    second = loaded_after(probe)
    assert [m for m in second if m.startswith(("holidays", "segno"))] == []

    from notifier.state import caches
    from notifier.billing.calendar import _bank_holidays, national_holidays
    import holidays
    caches.keep_beside(state)
    try:
        for path in (tmp_path / "state.json.cache" / "holidays").iterdir():
            path.write_text('["2026-13-45"')  # damaged: computed again, from the library
        _bank_holidays.cache_clear()
        national_holidays.cache_clear()
        assert _bank_holidays(2026) == {d for d in holidays.financial_holidays("BVMF", years=2026)
                                        if (d.month, d.day) != (12, 24)}
        assert national_holidays(2026) == set(holidays.country_holidays("BR", years=2026))
    finally:
        caches.keep_beside(None)
        _bank_holidays.cache_clear()
        national_holidays.cache_clear()
