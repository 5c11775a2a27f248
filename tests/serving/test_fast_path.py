"""Fast paths of the live request equal the general (pandas) formulations exactly."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features import functions as F

AWKWARD = [
    None, "", " ", "\t\n", "\x1c", "\u00a0x\u00a0", "de", " De ", "GERMANY", "uk", "Zz",
    "a@b", "x@GMAIL.com ", "@", "a@@yahoo.co.uk", "no-at-sign", "p@hotmail.fr\n",
    "u@sub@gmx.net", "ß@mail.ru", "İ@x.io", "é", "line\nbreak@aol.com", "q@web.de",
    " us", "united states", "ünïcode", "a@b.c@", "Foo@Yahoo.", "z@protonmail.com",
]


def _old_clean_text(values: pd.Series) -> pd.Series:
    values = values.astype("string").str.strip()
    return values.mask(values == "").astype("string")


def _old_present(values: pd.Series) -> np.ndarray:
    present = values.notna().to_numpy(dtype=bool).copy()
    text = values.astype("string").str.strip().fillna("")
    return present & (text != "").to_numpy(dtype=bool)


def _old_region_of(country: pd.Series) -> pd.Series:
    key = country.astype("string").str.strip().str.upper()
    region = key.map(F._REGION_OF).astype("string")
    return region.mask(key.notna() & (key != "") & region.isna(), "Other").astype("string")


def _old_free_mail(values: pd.Series) -> np.ndarray:
    email = values.astype("string").str.strip().str.lower()
    domain = email.str.rsplit("@", n=1).str[-1]
    domain = domain.where(email.str.contains("@", regex=False).fillna(False))
    is_free = domain.isin(F.FREE_MAIL_DOMAINS) | domain.str.startswith(
        F._FREE_MAIL_PREFIXES).fillna(False)
    return np.where(domain.isna().to_numpy(), np.nan, is_free.to_numpy(dtype=bool).astype(float))


@pytest.mark.parametrize("dtype", ["string", "str", object])
@pytest.mark.parametrize("size", [1, 2, len(AWKWARD)])
def test_arrow_text_helpers_equal_the_pandas_formulas(dtype, size):
    rng = np.random.default_rng(size)
    for _ in range(20):
        picked = [AWKWARD[i] for i in rng.integers(0, len(AWKWARD), size)]
        values = pd.Series(picked, dtype=dtype, index=rng.permutation(size) + 5)
        frame = pd.DataFrame({"c": values, "email": values})
        pd.testing.assert_series_equal(F._clean_text(frame, "c"), _old_clean_text(values))
        np.testing.assert_array_equal(F._present(frame, "c"), _old_present(values))
        pd.testing.assert_series_equal(F.region_of(values), _old_region_of(values))
        np.testing.assert_array_equal(F._free_mail_flag(frame), _old_free_mail(values))


URLS = [
    None, "", "https://x.io/pricing", "https://x.io/?utm_medium=Email", "/p?utm_source=li&x=1",
    "/p?a=1&utm_medium=%20&utm_source=ads", "/p?utm_medium= Social \t&utm_source=x",
    "/p#utm_medium=hash", "/p?utm_medium=&utm_source=Partner", "/p?xutm_medium=no",
    "/p?utm_medium=ÜBER", "/p?utm_source=a#frag", "/p?utm_medium=\u00a0",
    "/p?utm_source=Q&utm_medium=m", "https://x.io/a?utm_medium=cpc&utm_medium=display",
]
TYPES = ["page_view", "email_open", "webinar_attended", "chat", "form_submit", None, "custom"]
CAMPAIGNS = [None, "", "  ", "spring", " Spring ", "\t"]


def _old_activity_channel(activities: pd.DataFrame) -> pd.Series:
    """The pandas formulation activity_channel had before it moved to Arrow kernels."""
    from features.history import _TYPE_CHANNEL

    type_codes, type_values = pd.factorize(activities["type"].astype("string"))
    by_type = np.array([_TYPE_CHANNEL.get(str(t)) for t in type_values] + [None], dtype=object)
    channel = by_type[type_codes]
    text = activities["campaign"].astype("string").str.strip()
    has_campaign = (text.notna() & (text != "")).to_numpy(dtype=bool, na_value=False)
    channel = np.where((channel == None) & has_campaign, "campaign", channel)  # noqa: E711
    channel = np.where(channel == None, "web", channel)  # noqa: E711
    url_codes, url_values = pd.factorize(activities["url"].astype("string"))
    urls = pd.Series(url_values, dtype="string")
    tagged = urls.str.extract(r"[?&]utm_medium=([^&#]+)", expand=False).astype("string")
    tagged = tagged.fillna(urls.str.extract(r"[?&]utm_source=([^&#]+)",
                                            expand=False).astype("string"))
    tagged = tagged.str.strip().str.lower()
    tagged = tagged.where(tagged != "")
    lookup = np.append(tagged.to_numpy(dtype=object, na_value=None), None)
    by_url = lookup[url_codes]
    channel = np.where(by_url == None, channel, by_url)  # noqa: E711
    return pd.Series(pd.array(channel, dtype="string"), index=activities.index)


@pytest.mark.parametrize("size", [1, 3, 40])
def test_activity_channel_equals_the_pandas_formula(size):
    from features.history import activity_channel

    rng = np.random.default_rng(size)
    for _ in range(25):
        frame = pd.DataFrame({
            "type": [TYPES[i] for i in rng.integers(0, len(TYPES), size)],
            "campaign": [CAMPAIGNS[i] for i in rng.integers(0, len(CAMPAIGNS), size)],
            "url": [URLS[i] for i in rng.integers(0, len(URLS), size)],
        }, index=rng.permutation(size) + 3)
        pd.testing.assert_series_equal(activity_channel(frame), _old_activity_channel(frame))
