"""Masking keeps every log record in the shape its formatters expect: arguments keep their count and types (so
uvicorn's access formatter can still unpack them), a dict message stays a dict, the traceback stays attached,
``extra=`` fields are masked too, and the masking comes back when something resets the record factory."""

from __future__ import annotations

import copy
import io
import logging
import logging.config
import traceback
from collections.abc import Iterator

import pytest
import uvicorn.config

from norbit_connectors import _redact
from norbit_connectors._redact import MASK, SecretFilter, protect

SECRET = "verify-" + "k3y" * 8


class _Owner:
    """Stands for a connector: its secrets are protected while it lives."""


class Kept(logging.Handler):
    """Keeps every record it is handed, unformatted."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def owner() -> Iterator[_Owner]:
    factory = logging.getLogRecordFactory()
    make_record = logging.Logger.makeRecord
    owner = _Owner()
    protect(owner, SECRET)
    try:
        yield owner
    finally:
        logging.setLogRecordFactory(factory)
        logging.Logger.makeRecord = make_record  # type: ignore[method-assign]


@pytest.fixture
def kept() -> Iterator[Kept]:
    handler = Kept()
    logger = logging.getLogger("host.records")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(logging.NOTSET)


@pytest.fixture
def uvicorn_logging() -> Iterator[tuple[io.StringIO, io.StringIO]]:
    """uvicorn's own LOGGING_CONFIG, its streams swapped for buffers, colours on for the default formatter."""
    names = ("uvicorn", "uvicorn.error", "uvicorn.access")
    saved = {n: (lg.handlers[:], lg.level, lg.propagate) for n in names for lg in [logging.getLogger(n)]}
    config = copy.deepcopy(uvicorn.config.LOGGING_CONFIG)
    access, default = io.StringIO(), io.StringIO()
    config["handlers"]["access"]["stream"] = access
    config["handlers"]["default"]["stream"] = default
    config["formatters"]["default"]["use_colors"] = True
    logging.config.dictConfig(config)
    try:
        yield access, default
    finally:
        for name, (handlers, level, propagate) in saved.items():
            logger = logging.getLogger(name)
            logger.handlers[:] = handlers
            logger.setLevel(level)
            logger.propagate = propagate


def test_uvicorn_access_line_of_a_meta_verify_request_is_written_masked(
    owner: _Owner, uvicorn_logging: tuple[io.StringIO, io.StringIO], capsys: pytest.CaptureFixture[str]
) -> None:
    access, _ = uvicorn_logging
    path = f"/meta?hub.mode=subscribe&hub.verify_token={SECRET}&hub.challenge=1158201444"
    # What uvicorn's protocols log for every request.
    logging.getLogger("uvicorn.access").info('%s - "%s %s HTTP/%s" %d', "127.0.0.1:50412", "GET", path, "1.1", 200)
    line = access.getvalue()
    assert "Logging error" not in capsys.readouterr().err
    assert SECRET not in line
    assert f'127.0.0.1:50412 - "GET /meta?hub.mode=subscribe&hub.verify_token={MASK}&hub.challenge=1158201444' in line
    assert line.rstrip().endswith('HTTP/1.1" 200 OK')


def test_uvicorn_coloured_line_with_a_color_message_extra_is_written_masked(
    owner: _Owner, uvicorn_logging: tuple[io.StringIO, io.StringIO], capsys: pytest.CaptureFixture[str]
) -> None:
    _, default = uvicorn_logging
    logger = logging.getLogger("uvicorn.error")
    logger.info("proxy %s up", f"http://x/?k={SECRET}", extra={"color_message": "proxy \x1b[1m%s\x1b[0m up"})
    logger.info("plain", extra={"color_message": f"coloured {SECRET}"})
    text = default.getvalue()
    assert "Logging error" not in capsys.readouterr().err
    assert SECRET not in text
    assert f"proxy \x1b[1mhttp://x/?k={MASK}\x1b[0m up" in text
    assert f"coloured {MASK}" in text


def test_arguments_keep_their_count_and_types(owner: _Owner, kept: Kept) -> None:
    logger = logging.getLogger("host.records")
    logger.info("%s has %d items (%r) %s", SECRET, 5, 2.5, ["x", SECRET])
    logger.info("%(who)s sent %(n)d", {"who": SECRET, "n": 3})
    logger.info("nothing secret %s %d", "here", 7)
    first, mapping, plain = kept.records
    assert isinstance(first.args, tuple) and len(first.args) == 4
    assert first.args[0] == MASK and first.args[1] == 5 and first.args[2] == 2.5
    assert isinstance(first.args[3], str) and SECRET not in first.args[3]
    assert first.getMessage() == f"{MASK} has 5 items (2.5) ['x', '{MASK}']"
    assert mapping.args == {"who": MASK, "n": 3}
    assert mapping.getMessage() == f"{MASK} sent 3"
    assert plain.args == ("here", 7) and plain.msg == "nothing secret %s %d"


def test_a_dict_message_stays_a_dict(owner: _Owner, kept: Kept) -> None:
    event = {"event": "request", "url": f"https://x/?k={SECRET}", "status": 200}
    logging.getLogger("host.records").info(event)
    (record,) = kept.records
    assert isinstance(record.msg, dict)
    assert record.msg == {"event": "request", "url": f"https://x/?k={MASK}", "status": 200}
    assert event["url"] == f"https://x/?k={SECRET}"  # the caller's dict is left alone


def test_the_traceback_stays_attached_and_is_masked_for_every_formatter(owner: _Owner, kept: Kept) -> None:
    logger = logging.getLogger("host.records")
    try:
        raise ValueError("harmless")
    except ValueError as error:
        harmless = error
        logger.exception("failed")
    try:
        try:
            raise KeyError(f"inner {SECRET}")
        except KeyError as error:
            raise RuntimeError(f"outer {SECRET}") from error
    except RuntimeError:
        logger.exception("failed again")
    plain, leaking = kept.records
    assert plain.exc_info is not None and plain.exc_info[1] is harmless  # untouched when nothing to mask
    assert leaking.exc_info is not None and leaking.exc_info[2] is not None
    line = logging.Formatter("%(message)s").format(leaking)
    assert SECRET not in line and "outer ***" in line and "inner ***" in line and "RuntimeError" in line
    # A handler that formats exc_info itself (as Sentry-style and structlog-style ones do) gets no secret either.
    own = "".join(traceback.format_exception(*leaking.exc_info))
    assert SECRET not in own and "outer ***" in own and "inner ***" in own and "RuntimeError" in own


def test_extra_fields_are_masked(owner: _Owner) -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(message)s tok=%(tok)s n=%(n)s"))
    logger = logging.getLogger("host.extra")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        logger.info("direct", extra={"tok": SECRET, "n": 1})
        logging.LoggerAdapter(logger, {"tok": f"Bearer {SECRET}", "n": 2}).warning("adapter")
    finally:
        logger.removeHandler(handler)
        logger.setLevel(logging.NOTSET)
    assert stream.getvalue().splitlines() == [f"direct tok={MASK} n=1", f"adapter tok=Bearer {MASK} n=2"]


def test_masking_comes_back_after_the_factory_is_reset_and_can_be_removed(owner: _Owner, kept: Kept) -> None:
    logger = logging.getLogger("host.records")
    logging.setLogRecordFactory(logging.LogRecord)
    logging.Logger.makeRecord = logging.Logger.__dict__["makeRecord"]  # type: ignore[method-assign]
    while _redact.uninstall():  # every layer of ours, wherever it came from
        pass
    logger.info("a %s", SECRET)
    assert kept.records[-1].getMessage() == f"a {SECRET}"  # really off: the check below can fail
    protect(_Owner(), "another-" + "s" * 20)  # any registration puts the masking back
    logger.info("b %s", SECRET)
    assert kept.records[-1].getMessage() == f"b {MASK}"
    _redact.install()
    _redact.install()  # idempotent: no second layer
    assert _redact.uninstall()
    logger.info("c %s", SECRET)
    assert kept.records[-1].getMessage() == f"c {SECRET}"
    assert not _redact.uninstall()  # nothing of ours left on top


def test_uninstall_leaves_a_factory_someone_put_on_top(owner: _Owner, kept: Kept) -> None:
    ours = logging.getLogRecordFactory()

    def theirs(*args: object, **kwargs: object) -> logging.LogRecord:
        return ours(*args, **kwargs)

    logging.setLogRecordFactory(theirs)
    _redact.install()  # masks through the chain already: nothing stacked on top
    assert logging.getLogRecordFactory() is theirs
    _redact.uninstall()
    assert logging.getLogRecordFactory() is theirs
    logging.getLogger("host.records").info("d %s", SECRET)
    assert kept.records[-1].getMessage() == f"d {MASK}"


def test_a_handlers_filter_masks_extra_fields_too(owner: _Owner) -> None:
    record = logging.LogRecord("host", logging.INFO, __file__, 1, "plain %s", ("words",), None)
    record.__dict__.update(tok=f"Bearer {SECRET}", count=3)
    assert SecretFilter().filter(record)
    assert record.__dict__["tok"] == f"Bearer {MASK}" and record.__dict__["count"] == 3
    assert record.args == ("words",)


def test_a_reset_record_factory_does_not_switch_the_masking_off(owner: _Owner, kept: Kept) -> None:
    logger = logging.getLogger("host.records")
    logging.setLogRecordFactory(logging.LogRecord)  # as a test or an instrumentation's uninstall does
    logger.info("e %s", SECRET)
    assert kept.records[-1].getMessage() == f"e {MASK}"
    protect(_Owner(), "another-" + "s" * 20)  # and the next registration chains the factory again
    made = logging.getLogRecordFactory()("host", logging.INFO, __file__, 1, "f %s", (SECRET,), None)
    assert made.getMessage() == f"f {MASK}"
