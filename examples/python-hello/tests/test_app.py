from app import app


def test_root_says_hello() -> None:
    response = app.test_client().get("/")
    assert response.status_code == 200
    assert response.get_data(as_text=True) == "hello from python-hello\n"


def test_healthz_reports_ok() -> None:
    response = app.test_client().get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}


def test_unknown_path_is_404() -> None:
    assert app.test_client().get("/nope").status_code == 404
