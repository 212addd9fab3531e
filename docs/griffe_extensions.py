"""griffe extensions for sciax's sources, used by the API pages (docs/mkdocs.yml).

- `RedundantAliases`: names re-exported as `from ._x import Name as Name` are public.
  sciax's packages publish their API this way (PEP 484's explicit re-export) rather
  than with `__all__`; griffe treats every imported name as private unless told
  otherwise, so without this the API pages of `sciax.solvers` etc. would be empty.
- `EquinoxModules`: an `equinox.Module` is a dataclass made by a metaclass, which griffe
  does not see: it would show `CG()` with no parameters and warn that every documented
  field "does not appear in the signature". This gives such classes the `__init__`
  that equinox generates (annotated fields in definition order, parents first,
  `eqx.field(default=...)` defaults), so the signatures are right and griffe's check of
  documented against real parameters stays on.
"""

import ast

import griffe

_FIELD_CALLS = {"equinox.field", "dataclasses.field"}
_MODULE_BASES = {"equinox.Module", "equinox._module.Module"}
# Annotations that declare no field of the generated __init__.
_NOT_FIELDS = {
    "equinox.AbstractVar",
    "equinox.AbstractClassVar",
    "typing.ClassVar",
    "dataclasses.InitVar",
}


class RedundantAliases(griffe.Extension):
    """Mark `from module import name as name` in a package's `__init__` as public."""

    def on_package(self, *, pkg: griffe.Module, **kwargs) -> None:
        self._mark(pkg)

    def _mark(self, module: griffe.Module) -> None:
        if module.is_init_module and module.filepath is not None:
            tree = ast.parse(module.filepath.read_text(encoding="utf-8"))
            for node in tree.body:
                if isinstance(node, ast.ImportFrom):
                    for alias in node.names:
                        if alias.asname == alias.name and alias.name in module.members:
                            module.members[alias.name].public = True
        for member in module.modules.values():
            if not member.is_alias:
                self._mark(member)


def _canonical(expression) -> str:
    path = getattr(expression, "canonical_path", None)
    return path if path is not None else str(expression)


def _module_chain(class_: griffe.Class) -> list[griffe.Class] | None:
    """`class_` and its parents up to `equinox.Module`, parents first; None if not one."""
    for base in class_.bases:
        if _canonical(base) in _MODULE_BASES:
            return [class_]
        try:
            parent = class_.modules_collection.get_member(_canonical(base))
        except (KeyError, ValueError):
            continue
        if isinstance(parent, griffe.Alias):
            try:
                parent = parent.final_target
            except griffe.AliasResolutionError:
                continue
        if isinstance(parent, griffe.Class):
            chain = _module_chain(parent)
            if chain is not None:
                return [*chain, class_]
    return None


def _fields(class_: griffe.Class) -> list[griffe.Parameter]:
    parameters = []
    for member in class_.members.values():
        if member.is_alias or not member.is_attribute or member.annotation is None:
            continue
        if "property" in member.labels or (
            "class-attribute" in member.labels
            and "instance-attribute" not in member.labels
        ):
            continue
        annotation = member.annotation
        head = getattr(
            annotation, "left", annotation
        )  # Subscript: eqx.AbstractVar[...]
        if _canonical(head) in _NOT_FIELDS:
            continue
        default = member.value
        value = member.value
        if (
            isinstance(value, griffe.ExprCall)
            and _canonical(value.function) in _FIELD_CALLS
        ):
            arguments = {
                argument.name: argument.value
                for argument in value.arguments
                if isinstance(argument, griffe.ExprKeyword)
            }
            if str(arguments.get("init")) == "False":
                continue
            if "default" in arguments:
                default = arguments["default"]
            elif "default_factory" in arguments:
                default = griffe.ExprCall(arguments["default_factory"], [])
            else:
                default = None
        parameters.append(
            griffe.Parameter(
                member.name,
                annotation=annotation,
                kind=griffe.ParameterKind.positional_or_keyword,
                default=default,
                docstring=member.docstring,
            )
        )
    return parameters


class EquinoxModules(griffe.Extension):
    """Give `equinox.Module` subclasses without an `__init__` the one equinox generates."""

    def on_package(self, *, pkg: griffe.Module, **kwargs) -> None:
        written = set()  # classes given an __init__ here; their children get one too
        for class_ in _classes(pkg):
            if "__init__" in class_.members:
                continue
            chain = _module_chain(class_)
            if chain is None or any(
                "__init__" in parent.members and parent.path not in written
                for parent in chain[:-1]
            ):
                continue
            fields = {}
            for parent in chain:
                for parameter in _fields(parent):
                    fields[parameter.name] = parameter  # a redefinition keeps its place
            self_parameter = griffe.Parameter(
                "self", kind=griffe.ParameterKind.positional_or_keyword
            )
            init = griffe.Function(
                "__init__",
                lineno=0,
                endlineno=0,
                parent=class_,
                parameters=griffe.Parameters(self_parameter, *fields.values()),
                returns="None",
            )
            class_.set_member("__init__", init)
            written.add(class_.path)


def _classes(module: griffe.Module):
    for member in module.members.values():
        if member.is_alias:
            continue
        if isinstance(member, griffe.Class):
            yield member
        elif isinstance(member, griffe.Module):
            yield from _classes(member)
