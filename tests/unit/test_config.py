from pathlib import Path

import pytest

from mmsearch.config import DEFAULT_HNSW_THRESHOLD, DEFAULT_MODEL, default_home, resolve_settings
from mmsearch.errors import ConfigError


def test_precedence_flags_over_env_over_file_over_defaults(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text('model = "from-file:x"\ndevice = "cuda"\nbatch-size = 8\n')
    env = {"MMSEARCH_MODEL": "from-env:y"}

    from_file = resolve_settings(tmp_path, environ={})
    assert (from_file.model, from_file.device, from_file.batch_size) == ("from-file:x", "cuda", 8)

    from_env = resolve_settings(tmp_path, environ=env)
    assert from_env.model == "from-env:y"
    assert from_env.device == "cuda"

    from_flag = resolve_settings(tmp_path, environ=env, model="from-flag:z", device=None)
    assert from_flag.model == "from-flag:z"
    assert from_flag.device == "cuda"  # None means "not given"


def test_defaults(tmp_path: Path) -> None:
    settings = resolve_settings(tmp_path, environ={})
    assert settings.model is None  # the index's model, else DEFAULT_MODEL, is decided by the engine
    assert settings.device == "auto"
    assert settings.database_url == f"sqlite:///{tmp_path / 'mmsearch.db'}"
    assert settings.index_dir == tmp_path / "indexes"
    assert DEFAULT_MODEL == "ViT-B-32:laion2b_s34b_b79k"


def test_home_from_environment(tmp_path: Path) -> None:
    settings = resolve_settings(None, environ={"MMSEARCH_HOME": str(tmp_path / "h"), "MMSEARCH_DB_URL": "sqlite://"})
    assert settings.home == tmp_path / "h"
    assert settings.database_url == "sqlite://"


def test_checkout_default_home_is_the_indexes_folder() -> None:
    home = default_home()
    repo = Path(__file__).resolve().parents[2]
    assert home == repo / "indexes"
    settings = resolve_settings(home, environ={})
    assert settings.index_dir == home  # index files go straight into indexes/


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"device": "tpu"}, "device must be one of"),
        ({"batch_size": 0}, "batch_size must be at least 1"),
        ({"workers": "many"}, "workers must be an integer"),
    ],
)
def test_invalid_settings_are_refused(tmp_path: Path, overrides: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        resolve_settings(tmp_path, environ={}, **overrides)


def test_bad_config_file(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text("model = [unclosed\n")
    with pytest.raises(ConfigError, match="cannot read config file"):
        resolve_settings(tmp_path, environ={})
    (tmp_path / "config.toml").write_text('colour = "blue"\n')
    with pytest.raises(ConfigError, match="unknown setting"):
        resolve_settings(tmp_path, environ={})


def test_hnsw_threshold_from_file_env_and_argument(tmp_path: Path) -> None:
    assert resolve_settings(tmp_path, environ={}).hnsw_threshold == DEFAULT_HNSW_THRESHOLD == 50_000
    (tmp_path / "config.toml").write_text("hnsw-threshold = 20_000\n")
    assert resolve_settings(tmp_path, environ={}).hnsw_threshold == 20_000
    env = {"MMSEARCH_HNSW_THRESHOLD": "1000"}
    assert resolve_settings(tmp_path, environ=env).hnsw_threshold == 1000
    assert resolve_settings(tmp_path, environ=env, hnsw_threshold=7).hnsw_threshold == 7
    with pytest.raises(ConfigError, match="hnsw_threshold must be an integer"):
        resolve_settings(tmp_path, environ={"MMSEARCH_HNSW_THRESHOLD": "lots"})
    with pytest.raises(ConfigError, match="hnsw_threshold must be at least 1"):
        resolve_settings(tmp_path, environ={}, hnsw_threshold=0)


def test_batch_size_and_workers_follow_the_device() -> None:
    from mmsearch.config import default_batch_size, default_workers

    assert (default_batch_size("cpu"), default_batch_size("cuda")) == (32, 256)
    assert [default_workers("cpu", cpus) for cpus in (1, 2, 4, 16)] == [1, 1, 2, 4]  # the encoder needs the cores
    assert [default_workers("cuda", cpus) for cpus in (2, 16, 64)] == [2, 16, 16]  # decoding feeds the GPU


def test_an_ingest_reports_the_batch_size_and_workers_it_used(tmp_path, photo_dir) -> None:
    from mmsearch import Engine
    from mmsearch.config import default_workers

    with Engine.open(tmp_path / "auto", model="fake:16") as engine:
        report = engine.ingest(photo_dir)
    assert (report.batch_size, report.workers) == (32, default_workers("cpu"))  # the fake encoder: a CPU one
    with Engine.open(tmp_path / "set", model="fake:16", batch_size=4, workers=3) as engine:
        assert (engine.ingest(photo_dir).to_dict()["batch_size"], engine.settings.workers) == (4, 3)


def test_the_encoders_measured_batch_size_is_the_default_and_the_option_overrides_it(tmp_path, photo_dir) -> None:
    from mmsearch import Engine
    from mmsearch.encoders.fake import FakeEncoder

    class MeasuredBatch(FakeEncoder):
        """An encoder whose calibration found 2 images per call fastest; it records the batches it is given."""

        batch_size = 2

        def __init__(self) -> None:
            super().__init__(16)
            self.sizes: list[int] = []

        def encode_prepared(self, prepared):
            self.sizes.append(len(prepared))
            return super().encode_prepared(prepared)

    encoder = MeasuredBatch()
    with Engine.open(tmp_path / "measured", model="fake:16", encoder_factory=lambda name, device: encoder) as engine:
        report = engine.ingest(photo_dir)
    assert report.batch_size == 2 and max(encoder.sizes) <= 2 and sum(encoder.sizes) == report.embedded > 2
    encoder = MeasuredBatch()
    factory = lambda name, device: encoder  # noqa: E731
    with Engine.open(tmp_path / "option", model="fake:16", batch_size=5, encoder_factory=factory) as engine:
        assert engine.ingest(photo_dir).batch_size == 5 and max(encoder.sizes) > 2
