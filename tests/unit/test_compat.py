"""rpcframe against oslo.messaging's public API: names, signatures, options.

oslo.messaging (installed from PyPI as a test dependency) is the reference:
every public name it exports must exist here with the same parameter names
and defaults, the same exception relationships, and the same options. What
is deliberately left out is listed in ``LEFT_OUT`` and in
doc/source/reference/compatibility.rst; the two must agree.
"""

from __future__ import annotations

import inspect
import pathlib
import warnings

import pytest
from oslo_config import cfg

import rpcframe
import rpcframe.conffixture
import rpcframe.exceptions
import rpcframe.rpc.client
import rpcframe.rpc.dispatcher
import rpcframe.rpc.server
import rpcframe.serializer
import rpcframe.target
import rpcframe.transport
from rpcframe import opts

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    oslo_messaging = pytest.importorskip("oslo_messaging")
    import oslo_messaging.opts as oslo_opts

#: Names oslo.messaging exports that rpcframe deliberately does not.
LEFT_OUT = {
    "dispatcher": "the generic DispatcherBase module; servers take their own dispatchers",
}

#: oslo.messaging's "no value given" sentinel in prepare(); ours is a typed one.
_SENTINEL_DEFAULTS = {"_marker", "UNSET"}


def oslo_public_names():
    return sorted(n for n in dir(oslo_messaging) if not n.startswith("_"))


def _is_sentinel(value):
    return type(value) is object or repr(value) in _SENTINEL_DEFAULTS


def assert_same_parameters(ours, theirs, where):
    """oslo's parameters, in oslo's order, with oslo's defaults.

    rpcframe may add parameters after them (with defaults) or keyword-only
    ones: code written for oslo.messaging never passes those.
    """
    ours_params = inspect.signature(ours).parameters
    theirs_params = inspect.signature(theirs).parameters
    KW = inspect.Parameter.KEYWORD_ONLY
    shared = [n for n in ours_params if n in theirs_params]
    assert shared == list(theirs_params), f"{where}: oslo's parameters are missing or reordered"
    positional_ours = [n for n, p in ours_params.items() if p.kind != KW and p.kind <= 2]
    positional_theirs = [n for n, p in theirs_params.items() if p.kind != KW and p.kind <= 2]
    assert positional_ours[: len(positional_theirs)] == positional_theirs, f"{where}: positions"
    for name, param in ours_params.items():
        if name not in theirs_params and param.kind not in (KW, inspect.Parameter.VAR_KEYWORD):
            assert param.default is not inspect.Parameter.empty, f"{where}({name}) needs a default"
    for name, theirs_param in theirs_params.items():
        ours_param = ours_params[name]
        assert ours_param.kind == theirs_param.kind, f"{where}({name}): kind differs"
        theirs_default = theirs_param.default
        ours_default = ours_param.default
        if _is_sentinel(theirs_default):
            assert _is_sentinel(ours_default), f"{where}({name}): should default to 'unset'"
        elif theirs_default is inspect.Parameter.empty:
            assert ours_default is inspect.Parameter.empty, f"{where}({name}): should be required"
        elif inspect.isclass(theirs_default):
            assert inspect.isclass(ours_default), f"{where}({name}): default should be a class"
            assert ours_default.__name__ == theirs_default.__name__, f"{where}({name})"
        else:
            assert ours_default == theirs_default, f"{where}({name}): default differs"


@pytest.mark.parametrize("name", [n for n in oslo_public_names() if n not in LEFT_OUT])
def test_every_public_oslo_name_exists(name):
    assert hasattr(rpcframe, name), f"rpcframe lacks oslo_messaging.{name}"


def test_what_is_left_out_is_still_exported_by_oslo():
    # Otherwise the list (and the documentation) would name things that no longer exist.
    assert set(LEFT_OUT) <= set(oslo_public_names())


def _callables():
    for name in oslo_public_names():
        if name in LEFT_OUT:
            continue
        theirs = getattr(oslo_messaging, name)
        if inspect.ismodule(theirs):
            continue
        if inspect.isclass(theirs) and issubclass(theirs, BaseException):
            continue
        yield name


@pytest.mark.parametrize("name", list(_callables()))
def test_public_functions_and_classes_take_the_same_arguments(name):
    theirs = getattr(oslo_messaging, name)
    ours = getattr(rpcframe, name)
    target_theirs = getattr(theirs, "__wrapped__", theirs)
    assert_same_parameters(ours, target_theirs, name)


@pytest.mark.parametrize(
    ("cls", "methods"),
    [
        ("RPCClient", ["prepare", "call", "cast", "can_send_version"]),
        ("MessageHandlingServer", ["start", "stop", "wait", "reset"]),
        (
            "Serializer",
            ["serialize_entity", "deserialize_entity", "serialize_context", "deserialize_context"],
        ),
        ("RPCAccessPolicyBase", ["is_allowed"]),
        ("TransportURL", ["parse"]),
        ("Transport", ["cleanup"]),
    ],
)
def test_methods_take_the_same_arguments(cls, methods):
    for method in methods:
        theirs = getattr(getattr(oslo_messaging, cls), method)
        ours = getattr(getattr(rpcframe, cls), method)
        theirs_params = [
            p for p in inspect.signature(theirs).parameters if p != "transport_options"
        ]
        # Keyword-only parameters are rpcframe's additions (or, for start, stop
        # and wait, oslo's own log_after and timeout, which its decorator hides).
        ours_params = [
            name
            for name, param in inspect.signature(ours).parameters.items()
            if name != "transport_options" and param.kind != inspect.Parameter.KEYWORD_ONLY
        ]
        assert ours_params == theirs_params, f"{cls}.{method}"


def _exceptions():
    for name in oslo_public_names():
        theirs = getattr(oslo_messaging, name)
        if inspect.isclass(theirs) and issubclass(theirs, BaseException):
            yield name


@pytest.mark.parametrize("name", list(_exceptions()))
def test_exceptions_keep_oslo_bases_and_constructor(name):
    theirs = getattr(oslo_messaging, name)
    ours = getattr(rpcframe, name)
    for base_name in ("MessagingException", "MessagingServerError", "RPCDispatcherError"):
        oslo_base = getattr(oslo_messaging, base_name)
        if issubclass(theirs, oslo_base):
            assert issubclass(ours, getattr(rpcframe, base_name)), f"{name} must be a {base_name}"
    for builtin in (ValueError, AttributeError):
        if issubclass(theirs, builtin):
            assert issubclass(ours, builtin), f"{name} must be a {builtin.__name__}"
    if "__init__" in vars(theirs):
        assert_same_parameters(ours.__init__, theirs.__init__, f"{name}.__init__")


def test_every_rpcframe_exception_is_in_one_tree():
    for name in rpcframe.exceptions.__all__:
        exc = getattr(rpcframe.exceptions, name)
        # Raised by endpoints to steer the server, not errors of rpcframe's.
        if exc is rpcframe.ExpectedException or issubclass(
            exc, rpcframe.exceptions.NotificationControl
        ):
            continue
        assert issubclass(exc, rpcframe.MessagingException), name


@pytest.mark.parametrize(
    ("module", "name"),
    [
        ("rpcframe.rpc.client", "RemoteError"),
        ("rpcframe.rpc.client", "RPCClient"),
        ("rpcframe.rpc.client", "get_rpc_client"),
        ("rpcframe.rpc.server", "RPCServer"),
        ("rpcframe.rpc.server", "expected_exceptions"),
        ("rpcframe.rpc.server", "expose"),
        ("rpcframe.rpc.server", "get_rpc_server"),
        ("rpcframe.rpc.dispatcher", "RPCDispatcher"),
        ("rpcframe.rpc.dispatcher", "NoSuchMethod"),
        ("rpcframe.rpc.dispatcher", "ExpectedException"),
        ("rpcframe.conffixture", "ConfFixture"),
        ("rpcframe.serializer", "NoOpSerializer"),
        ("rpcframe.serializer", "JsonPayloadSerializer"),
        ("rpcframe.target", "Target"),
        ("rpcframe.transport", "TransportURL"),
        ("rpcframe.transport", "get_transport"),
        ("rpcframe.exceptions", "MessagingTimeout"),
        ("rpcframe.server", "MessageHandlingServer"),
        ("rpcframe.notify.middleware", "RequestNotifier"),
    ],
)
def test_module_paths_users_import_exist(module, name):
    oslo_module = module.replace("rpcframe", "oslo_messaging")
    __import__(oslo_module)
    import sys

    assert hasattr(sys.modules[oslo_module], name), f"the reference lacks {oslo_module}.{name}"
    __import__(module)
    assert hasattr(sys.modules[module], name), f"{module}.{name} is missing"


#: The option groups compared with oslo.messaging's, every option of each
#: (deprecation state and limits too for ``[oslo_messaging_rabbit]``).
COMPARED_GROUPS = (None, "oslo_messaging_notifications", "oslo_messaging_rabbit")

#: rpcframe options oslo.messaging 18 no longer has, and why they stay.
KEPT_AFTER_OSLO_REMOVED = {
    ("oslo_messaging_rabbit", "heartbeat_in_pthread"): "removed in oslo.messaging 18.0; "
    "deployment tools (Kolla-Ansible) still write it, so it stays accepted and deprecated",
}


def _oslo_options():
    for group, group_opts in oslo_opts.list_opts():
        if group in COMPARED_GROUPS:
            for opt in group_opts:
                yield group, opt


def _our_options():
    return {(g, o.name): o for g, group_opts in opts.list_opts() for o in group_opts}


def _deprecated_names(opt):
    return sorted((d.group, d.name) for d in opt.deprecated_opts)


@pytest.mark.parametrize(
    ("group", "opt"), list(_oslo_options()), ids=lambda v: getattr(v, "name", v)
)
def test_options_keep_oslo_names_types_and_defaults(group, opt):
    mine = _our_options().get((group, opt.name))
    assert mine is not None, f"[{group or 'DEFAULT'}] {opt.name} is missing"
    assert type(mine) is type(opt), f"{opt.name}: {type(mine).__name__} != {type(opt).__name__}"
    assert mine.default == opt.default, f"{opt.name}: default differs"
    assert mine.sample_default == opt.sample_default, f"{opt.name}: sample default differs"
    assert bool(mine.secret) == bool(opt.secret)


def _oslo_rabbit_options():
    return [(g, opt) for g, opt in _oslo_options() if g == "oslo_messaging_rabbit"]


@pytest.mark.parametrize(
    ("group", "opt"), _oslo_rabbit_options(), ids=lambda v: getattr(v, "name", v)
)
def test_rabbit_options_keep_oslo_deprecation_state_and_limits(group, opt):
    mine = _our_options()[(group, opt.name)]
    assert mine.deprecated_for_removal == opt.deprecated_for_removal, opt.name
    assert _deprecated_names(mine) == _deprecated_names(opt), f"{opt.name}: deprecated names"
    for limit in ("min", "max", "choices"):
        theirs = getattr(opt.type, limit, None)
        ours = getattr(mine.type, limit, None)
        if limit == "choices" and theirs is not None:
            theirs, ours = list(theirs), list(ours or ())
        assert ours == theirs, f"{opt.name}: {limit} differs"


def test_every_rabbit_option_is_one_of_oslos():
    group = "oslo_messaging_rabbit"
    theirs = {opt.name for g, opt in _oslo_options() if g == group}
    ours = {name for g, name in _our_options() if g == group}
    extra = {name for name in ours - theirs if (group, name) not in KEPT_AFTER_OSLO_REMOVED}
    assert not extra, f"[{group}] options oslo.messaging does not have: {extra}"


def test_options_kept_after_oslo_removed_them_are_deprecated_for_removal():
    ours = _our_options()
    for key in KEPT_AFTER_OSLO_REMOVED:
        assert ours[key].deprecated_for_removal, key


def test_rabbit_options_without_effect_are_listed_in_the_admin_guide():
    page = pathlib.Path(__file__).parents[2] / "doc" / "source" / "admin" / "rabbitmq.rst"
    text = page.read_text()
    section = text.split("Accepted without effect", 1)[1].split("\n===", 1)[0]
    for name in opts.RABBIT_ACCEPTED_ONLY:
        assert f"``{name}``" in section, f"rabbitmq.rst does not list {name} as without effect"
    assert opts.RABBIT_ACCEPTED_ONLY >= {
        "rpc_conn_pool_size",
        "conn_pool_min_size",
        "conn_pool_ttl",
        "heartbeat_in_pthread",
    }


def test_deprecated_option_names_are_still_read(tmp_path):
    conf = cfg.ConfigOpts()
    conf.register_opts(opts.pool_opts)
    path = tmp_path / "service.conf"
    path.write_text("[DEFAULT]\nrpc_thread_pool_size = 7\n")
    conf(["--config-file", str(path)])
    assert conf.executor_thread_pool_size == 7


def test_the_left_out_list_matches_the_documentation():
    page = pathlib.Path(__file__).parents[2] / "doc" / "source" / "reference" / "compatibility.rst"
    text = page.read_text()
    for name in LEFT_OUT:
        assert f"``{name}``" in text, f"compatibility.rst does not mention {name}"
