"""JSON payloads: how inputs, outputs, event data, custom status and entity state
become strings on the wire and Python values again.

Encoding:

* JSON types encode as themselves; tuples and sets as arrays.
* Dataclasses, namedtuples, ``SimpleNamespace`` and plain objects (anything with a
  ``__dict__``) encode as JSON objects tagged with ``"__durabletask_autoobject__":
  true``, the marker other Durable Task Python SDKs also read, so a worker of
  either SDK gets attribute access back (``approval.approver``).
* A class may take over with a ``to_json(self)`` method returning a JSON-able value
  (and a ``from_json(cls, value)`` classmethod for decoding).
* Enums encode as their value; ``datetime``/``date``/``time`` as ISO-8601 strings
  (a naive ``datetime`` is read back as UTC);
  ``timedelta`` as seconds; ``UUID`` and ``Decimal`` as strings.
* Anything else raises :class:`~dtask_async.PayloadError` (a ``TypeError``) that
  names the offending type and where it sits in the value.

Decoding gives plain JSON values, with tagged objects as :class:`PayloadObject`
(a ``SimpleNamespace`` that also answers ``obj["key"]``). When the receiving
function annotates its parameter, :func:`coerce` rebuilds that type: dataclasses,
namedtuples, plain classes taking their fields as keywords, ``datetime`` and
friends, enums, and ``list[...]``/``dict[str, ...]``/``Optional[...]`` of those.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import decimal
import enum
import functools
import inspect
import json
import types
import typing
import uuid
import weakref
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from ._errors import PayloadError

__all__ = (
    "AUTO_OBJECT_MARKER",
    "PayloadObject",
    "coerce",
    "decode",
    "encode",
    "input_type_of",
    "memo_per_callable",
    "to_jsonable",
)

T = TypeVar("T")

AUTO_OBJECT_MARKER = "__durabletask_autoobject__"

_SCALARS = (str, int, float, bool, type(None))


class PayloadObject(types.SimpleNamespace):
    """A decoded JSON object that was an object (not a dict) when it was encoded.

    Fields are attributes (``order.quantity``); ``order["quantity"]``, ``in``,
    ``get`` and iteration over field names work too.
    """

    def __getitem__(self, key: str) -> Any:
        try:
            return self.__dict__[key]
        except KeyError:
            raise KeyError(key) from None

    def __contains__(self, key: object) -> bool:
        return key in self.__dict__

    def __iter__(self) -> typing.Iterator[str]:
        return iter(self.__dict__)

    def __len__(self) -> int:
        return len(self.__dict__)

    def get(self, key: str, default: Any = None) -> Any:
        """The field's value, or ``default`` when there is no such field."""
        return self.__dict__.get(key, default)

    def keys(self) -> typing.KeysView[str]:
        """The field names."""
        return self.__dict__.keys()

    def to_dict(self) -> dict[str, Any]:
        """A shallow copy of the fields as a dict."""
        return dict(self.__dict__)


def _tag(fields: Mapping[str, Any], path: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in fields.items():
        if key.startswith("_") and key != AUTO_OBJECT_MARKER:
            continue  # private attributes of plain objects are not payload
        out[key] = to_jsonable(value, f"{path}.{key}")
    out[AUTO_OBJECT_MARKER] = True
    return out


def to_jsonable(value: Any, path: str = "value") -> Any:
    """Convert ``value`` to plain JSON types, or raise :class:`PayloadError`.

    Args:
        value: what to convert.
        path: how to name the value in error messages (``"input"``,
            ``"result of activity 'charge'"`` ...).
    """
    if isinstance(value, enum.Enum):  # before scalars: str and int enums are scalars too
        return to_jsonable(value.value, path)
    if isinstance(value, _SCALARS):
        if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
            raise PayloadError(f"{path} is {value!r}, which JSON cannot represent")
        return value
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if isinstance(key, enum.Enum):
                key = key.value
            if not isinstance(key, (str, int, float, bool)) and key is not None:
                raise PayloadError(
                    f"{path} has a key of type {type(key).__name__!r}; "
                    "JSON object keys must be strings or numbers"
                )
            out[key if isinstance(key, str) else json.dumps(key)] = to_jsonable(
                item, f"{path}[{key!r}]"
            )
        return out
    hook = getattr(type(value), "to_json", None)
    if callable(hook):
        return to_jsonable(hook(value), path)
    if isinstance(value, tuple) and hasattr(value, "_asdict"):
        return _tag(value._asdict(), path)
    if isinstance(value, (list, tuple)):
        return [to_jsonable(item, f"{path}[{i}]") for i, item in enumerate(value)]
    if isinstance(value, (set, frozenset)):
        items = [to_jsonable(item, f"{path}[...]") for item in value]
        try:
            return sorted(items)
        except TypeError:
            return items
    if isinstance(value, (_dt.datetime, _dt.date, _dt.time)):
        return value.isoformat()
    if isinstance(value, _dt.timedelta):
        return value.total_seconds()
    if isinstance(value, (uuid.UUID, decimal.Decimal)):
        return str(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _tag({f.name: getattr(value, f.name) for f in dataclasses.fields(value)}, path)
    if isinstance(value, types.SimpleNamespace):
        return _tag(vars(value), path)
    if isinstance(value, (bytes, bytearray, memoryview)):
        raise PayloadError(
            f"{path} is {type(value).__name__}, which JSON cannot carry; "
            "encode it first (base64, for example)"
        )
    if _is_plain_object(value):
        return _tag(vars(value), path)
    raise PayloadError(
        f"{path} is not JSON-serializable: object of type "
        f"{type(value).__module__}.{type(value).__qualname__}"
    )


def _is_plain_object(value: Any) -> bool:
    if callable(value) or inspect.ismodule(value) or isinstance(value, type):
        return False
    return hasattr(value, "__dict__") and type(value).__module__ != "builtins"


def encode(value: Any, what: str = "value") -> str | None:
    """Encode ``value`` as a JSON payload; ``None`` stays ``None`` (no payload).

    Raises:
        PayloadError: the value (or something inside it) cannot be encoded. The
            message names it, using ``what`` for the outermost value.
    """
    if value is None:
        return None
    try:
        text = _ENCODER.encode(to_jsonable(value, what))
    except RecursionError:
        raise PayloadError(f"{what} is too deeply nested (or refers to itself)") from None
    if not text.isascii():
        # Payloads travel as UTF-8: a lone surrogate (from ``surrogateescape``
        # decoding, say) would fail later, deep inside protobuf.
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise PayloadError(
                f"{what} contains {text[exc.start : exc.end]!r}, which is not valid "
                f"Unicode text (a lone surrogate) and cannot be sent as UTF-8"
            ) from None
    return text


def _object_hook(obj: dict[str, Any]) -> Any:
    if obj.pop(AUTO_OBJECT_MARKER, False):
        return PayloadObject(**obj)
    return obj


# One encoder and one decoder for every payload: ``json.dumps``/``json.loads`` build a
# new one per call whenever an option is given.
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)
_DECODER = json.JSONDecoder(object_hook=_object_hook)


def decode(text: str | None, type_hint: Any = None) -> Any:
    """Decode a JSON payload; an absent or empty payload is ``None``.

    Args:
        text: the payload.
        type_hint: when given, the decoded value is rebuilt as this type with
            :func:`coerce` (best effort: a value that does not fit is returned as
            decoded).

    Raises:
        PayloadError: the text is not JSON.
    """
    if text is None or text == "":
        return None
    try:
        value = _DECODER.decode(text)
    except ValueError as exc:
        snippet = text if len(text) <= 60 else text[:57] + "..."
        raise PayloadError(f"payload is not valid JSON ({exc}): {snippet!r}") from exc
    if type_hint is None:
        return value
    return coerce(value, type_hint)


def coerce(value: Any, type_hint: Any) -> Any:
    """Rebuild ``value`` (already decoded) as ``type_hint`` where that is possible.

    Values that do not fit the hint are returned unchanged, so a wrong annotation
    never loses data.
    """
    try:
        return _coerce(value, type_hint)
    except Exception:
        return value


def _fields_of(value: Any) -> dict[str, Any] | None:
    if isinstance(value, PayloadObject):
        return value.to_dict()
    if isinstance(value, dict):
        return value
    return None


def _coerce(value: Any, hint: Any) -> Any:
    if value is None or hint is None or hint is Any or hint is inspect.Parameter.empty:
        return value
    origin = typing.get_origin(hint)
    if origin is not None:
        args = typing.get_args(hint)
        if origin is typing.Union or origin is getattr(types, "UnionType", None):
            members = [a for a in args if a is not type(None)]
            for member in members:
                if isinstance(member, type) and isinstance(value, member):
                    return value
            return _coerce(value, members[0]) if len(members) == 1 else value
        if origin in (list, Sequence, set, frozenset) and isinstance(value, list):
            item_hint = args[0] if args else None
            items = [_coerce(v, item_hint) for v in value]
            return origin(items) if origin in (set, frozenset) else items
        if origin in (dict, Mapping) and isinstance(value, (dict, PayloadObject)):
            value_hint = args[1] if len(args) == 2 else None
            return {k: _coerce(v, value_hint) for k, v in dict(_fields_of(value) or {}).items()}
        if origin is tuple and isinstance(value, list):
            if len(args) == 2 and args[1] is Ellipsis:
                return tuple(_coerce(v, args[0]) for v in value)
            if args and len(args) == len(value):
                return tuple(_coerce(v, a) for v, a in zip(value, args, strict=False))
            return tuple(value)
        return value
    if not isinstance(hint, type):
        return value
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, hint) and not isinstance(value, PayloadObject):
        return value
    from_json = getattr(hint, "from_json", None)
    if callable(from_json):
        return from_json(value)
    if issubclass(hint, enum.Enum):
        return hint(value)
    if hint is _dt.datetime and isinstance(value, str):
        parsed = _dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        # Orchestration time is aware UTC; a naive time is taken to be UTC so the
        # two can be compared and subtracted.
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=_dt.timezone.utc)
    if hint is _dt.date and isinstance(value, str):
        return _dt.date.fromisoformat(value)
    if hint is _dt.time and isinstance(value, str):
        return _dt.time.fromisoformat(value)
    if hint is _dt.timedelta and isinstance(value, (int, float)):
        return _dt.timedelta(seconds=value)
    if hint in (uuid.UUID, decimal.Decimal) and isinstance(value, str):
        return hint(value)
    fields = _fields_of(value)
    if fields is not None and hint not in (dict, object):
        if dataclasses.is_dataclass(hint):
            hints = _type_hints(hint)
            kwargs = {
                f.name: _coerce(fields[f.name], hints.get(f.name))
                for f in dataclasses.fields(hint)
                if f.init and f.name in fields
            }
            return hint(**kwargs)
        if issubclass(hint, tuple) and hasattr(hint, "_fields"):
            hints = _type_hints(hint)
            return hint(
                **{k: _coerce(fields[k], hints.get(k)) for k in hint._fields if k in fields}
            )
        if issubclass(hint, dict):
            return hint(fields)
        return _build_plain(hint, fields)
    if hint is dict and isinstance(value, PayloadObject):
        return value.to_dict()
    if isinstance(value, list) and issubclass(hint, tuple) and hasattr(hint, "_fields"):
        return hint(*value)  # a namedtuple encoded as an array by another SDK
    return value


@functools.lru_cache(maxsize=512)
def _type_hints(cls: type) -> dict[str, Any]:
    try:
        return typing.get_type_hints(cls)
    except Exception:
        return {}


def _build_plain(cls: Any, fields: dict[str, Any]) -> Any:
    try:
        params = inspect.signature(cls).parameters
    except (TypeError, ValueError):
        params = None
    if params is not None:
        accepts_all = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
        names = [
            n
            for n, p in params.items()
            if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
        ]
        if accepts_all or set(fields) <= set(names):
            hints = _type_hints(cls.__init__) if hasattr(cls, "__init__") else {}
            return cls(**{k: _coerce(v, hints.get(k)) for k, v in fields.items()})
    obj = cls.__new__(cls)
    obj.__dict__.update(fields)
    return obj


def memo_per_callable(compute: Callable[[Any], T]) -> Callable[[Any], T]:
    """Remember ``compute(fn)`` for as long as ``fn`` lives.

    Signature inspection costs tens of microseconds, and orchestrators ask for it on
    every execution. Callables that cannot be weakly referenced are not remembered.
    """
    memo: weakref.WeakKeyDictionary[Any, T] = weakref.WeakKeyDictionary()

    @functools.wraps(compute)
    def cached(fn: Any) -> T:
        try:
            return memo[fn]
        except KeyError:
            pass
        except TypeError:
            return compute(fn)
        value = compute(fn)
        try:
            memo[fn] = value
        except TypeError:
            pass
        return value

    return cached


@memo_per_callable
def input_type_of(fn: Callable[..., Any]) -> Any:
    """The annotation of ``fn``'s input parameter, or ``None``.

    Orchestrators, activities and entities take ``(ctx, input)``: the input is the
    second parameter. Unresolvable or missing annotations give ``None``.
    """
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return None
    if len(params) <= 1:
        return None
    annotation = params[1].annotation
    if annotation is inspect.Parameter.empty:
        return None
    if isinstance(annotation, str):
        try:
            hints = typing.get_type_hints(fn)
        except Exception:
            return None
        return hints.get(params[1].name)
    return annotation
