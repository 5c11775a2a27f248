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
