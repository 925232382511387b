"""A site that cannot take part says so with a site-internal error; its app reaches workers started in any folder."""

from __future__ import annotations

import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from flwr.app import Context, Message, MessageType, RecordDict
from flwr.common.constant import ErrorCode
from flwr.supercore.task_identity import TaskIdentity

from participants.client_app import make_client_app
from tests.approved_demo import REPO, DemoCopy
from tests.participants.guard_harness import message, spec_document
from trialcore import wire

SHADOWED = ("policies", "monitoring", "participants", "sandbox", "trialcore", "tests")


@pytest.fixture(autouse=True)
def task_identity(monkeypatch: pytest.MonkeyPatch) -> None:
    """Flower replies need the task's identity, which the SuperNode process normally sets."""
    for name in ("_run_id", "_node_id", "_task_id"):
        monkeypatch.setattr(TaskIdentity, name, 1)


def shadowing_folder(root: Path) -> Path:
    """A folder holding packages named like the project's, each raising if imported."""
    for name in SHADOWED:
        (root / name).mkdir(parents=True)
        (root / name / "__init__.py").write_text(f"raise ImportError('the user folder {name} was imported')\n")
    return root


def reply_of(app_message: Message, demo: DemoCopy, run_dir: Path, **app_args: object) -> Message:
    context = Context(
        run_id=1,
        node_id=5,
        node_config={"site-config": str(demo.site_config("de-berlin"))},
        state=RecordDict(),
        run_config={},
    )
    app = make_client_app({wire.RUN_DIR: str(run_dir)}, **app_args)  # type: ignore[arg-type]
    return app(app_message, context)


def misfit_spec(demo: DemoCopy, tmp_path: Path) -> Path:
    """The demo spec with a model taking 31 features (the data has 30), approved by every site."""
    document = yaml.safe_load(demo.spec.read_text(encoding="utf-8"))
    document["model"]["input_features"] = 31
    document.pop("data", None)  # the contract would refuse the width; the site's own check is what is tested
    document["federation"] = str(demo.sites_dir)
    path = tmp_path / "misfit.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    demo.approve(path)
    return path


def test_data_that_does_not_fit_the_model_is_a_site_internal_error(approved_demo: DemoCopy, tmp_path: Path) -> None:
    """A site whose data width differs from the model's input_features replies site-internal-error, naming itself and both widths."""
    msg = message(spec_document(misfit_spec(approved_demo, tmp_path)), message_type=MessageType.QUERY)
    reply = reply_of(msg, approved_demo, tmp_path / "run")
    assert reply.has_error() and reply.error.code == ErrorCode.CLIENT_APP_RAISED_EXCEPTION
    assert reply.error.reason == (
        "site-internal-error: site de-berlin: its data has 30 features but the trial's model takes 31 "
        "(model.input_features)"
    )


def test_a_raising_handler_replies_with_the_exception_type_only(approved_demo: DemoCopy, tmp_path: Path) -> None:
    """An unexpected exception becomes a site-internal error naming its type; its text (which may quote a record) stays at the site."""

    def raising(msg: Message, context: Context, overrides: object) -> Message:
        raise ValueError("record 17 has age 203")

    msg = message(spec_document(approved_demo.spec), message_type=MessageType.TRAIN)
    reply = reply_of(msg, approved_demo, tmp_path / "run", train=raising)
    assert reply.has_error() and reply.error.code == ErrorCode.CLIENT_APP_RAISED_EXCEPTION
    assert reply.error.reason == "site-internal-error: site de-berlin: ValueError raised while handling a train message"


def test_the_pickled_app_is_rebuilt_from_the_project_in_a_shadowing_folder(tmp_path: Path) -> None:
    """Unpickled where the working folder comes first on the import path (as in a Ray worker), the app still imports the project's packages."""
    folder = shadowing_folder(tmp_path / "trial")
    app_file = tmp_path / "app.pickle"
    app_file.write_bytes(pickle.dumps(make_client_app({wire.RUN_DIR: "/nowhere"})))
    check = (
        "import pickle, sys; assert sys.path[0] == ''; "
        f"app = pickle.loads(open({str(app_file)!r}, 'rb').read()); "
        "import participants, policies, trialcore; "
        "print(type(app).__name__, participants.__file__, policies.__file__, trialcore.__file__)"
    )
    unpickled = subprocess.run(
        [sys.executable, "-c", check], cwd=folder, capture_output=True, text=True, timeout=120, env={"PATH": ""}
    )
    assert unpickled.returncode == 0, unpickled.stderr[-2000:]
    kind, *files = unpickled.stdout.split()
    assert kind == "PortableClientApp"
    assert all(Path(file).is_relative_to(REPO) for file in files), files
    naive = subprocess.run(
        [sys.executable, "-c", "import participants.client_app"], cwd=folder, capture_output=True, text=True
    )
    assert "the user folder participants was imported" in naive.stderr, "the folder really shadows by name"
