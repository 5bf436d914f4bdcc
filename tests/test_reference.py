from diemthi.reference import COMBINATIONS, LANGUAGES, SUBJECTS, provinces, subjects_for


def test_tables_load_from_package_data():
    assert SUBJECTS["toan"].name == "Toán"
    assert LANGUAGES["N1"] == "Tiếng Anh" and len(LANGUAGES) == 7
    assert COMBINATIONS["A00"].subjects == ("toan", "vat_li", "hoa_hoc")


def test_d01_expands_to_d02_d06_with_their_languages():
    assert [COMBINATIONS[f"D0{n}"].language for n in range(1, 7)] == [f"N{n}" for n in range(1, 7)]
    assert COMBINATIONS["D07"].language == "N1" and COMBINATIONS["A01"].language == "N1"
    assert COMBINATIONS["A00"].language is None


def test_province_codes_changed_in_2026():
    assert provinces(2026)["04"] == "Tỉnh Cao Bằng"
    assert provinces(2025)["04"] == "Thành phố Đà Nẵng"
    assert provinces(2026)["48"] == "Thành phố Đà Nẵng"


def test_subjects_by_year():
    assert "gdcd" in subjects_for(2024) and "gdktpl" not in subjects_for(2024)
    assert "gdcd" not in subjects_for(2026) and "tin_hoc" in subjects_for(2026)
