"""The text of Hadoop's configuration files, from EMR configuration classifications.

Every name and value is written in the file's own syntax, escaped by it, so what a user
asked for is what Hadoop reads: site files are XML built with lxml, ``*-env`` exports are
bash assignments, ``hadoop-log4j`` properties are Java properties.  Names a file's syntax
cannot carry are refused when the configuration is submitted (:func:`check_names`).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping

from lxml import etree

from resilin.errors import ValidationError

# EMR's XmlString: the characters XML 1.0 can carry; anything else could not reach a site file.
_XML_TEXT = re.compile("[\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff\r\n\t]*")
# An exported variable must be a name bash can assign (export A;B=... would run B).
_SHELL_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# log4j property names are dotted identifiers (log4j.logger.org.example.Foo$Inner).
_LOG4J_NAME = re.compile(r"[A-Za-z0-9_.$-]+")


def check_names(classification: str, properties: Mapping[str, str], export: bool) -> None:
    """Refuse names and values the classification's file cannot hold (raises ValidationError)."""
    for name, value in properties.items():
        for text in (name, value):
            if not isinstance(text, str) or not _XML_TEXT.fullmatch(text):
                raise ValidationError(
                    f"The property {name!r} of classification '{classification}' contains characters "
                    "that are not allowed."
                )
        if export and not _SHELL_NAME.fullmatch(name):
            raise ValidationError(
                f"The export {name!r} of classification '{classification}' is not a valid environment "
                "variable name."
            )
        if classification == "hadoop-log4j" and not _LOG4J_NAME.fullmatch(name):
            raise ValidationError(
                f"The property name {name!r} of classification 'hadoop-log4j' is not valid: "
                "use letters, digits and . _ $ -"
            )


def site_xml(properties: Mapping[str, str], cluster_id: str, final: Collection[str] = ()) -> str:
    """A Hadoop site file (``<configuration><property>…``) holding ``properties``, sorted by name;
    those named in ``final`` are marked final (a job's own configuration cannot override them)."""
    root = etree.Element("configuration")
    root.text = "\n  "
    for name, value in sorted(properties.items()):
        prop = etree.SubElement(root, "property")
        etree.SubElement(prop, "name").text = name
        etree.SubElement(prop, "value").text = value
        if name in final:
            etree.SubElement(prop, "final").text = "true"
        prop.tail = "\n  "
    if len(root):
        root[-1].tail = "\n"
    else:
        root.text = "\n"
    header = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<!-- Written by Resilin for cluster {cluster_id}; EMR configuration classifications "
        "override these defaults. -->\n"
    )
    return header + etree.tostring(root, encoding="unicode")


def shell_value(value: str) -> str:
    """An export's value as EMR writes it: double-quoted, so $VARIABLES still expand."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("`", "\\`") + '"'


def env_exports(exports: Mapping[str, str]) -> str:
    """A ``*-env.sh`` file's exports (names checked by :func:`check_names`)."""
    for name in exports:
        if not _SHELL_NAME.fullmatch(name):  # a configuration stored before names were checked
            raise ValueError(f"export name {name!r} is not a shell identifier")
    return "".join(f"export {name}={shell_value(value)}\n" for name, value in sorted(exports.items()))


def java_escape(text: str, is_key: bool) -> str:
    """``text`` as java.util.Properties.load reads it back, from an ISO 8859-1 file."""
    out = []
    for i, ch in enumerate(text):
        if ch == "\\":
            out.append("\\\\")
        elif ch in "\t\n\r\f":
            out.append({"\t": "\\t", "\n": "\\n", "\r": "\\r", "\f": "\\f"}[ch])
        elif ch == " " and (is_key or i == 0):
            out.append("\\ ")  # a leading space would be skipped as separator whitespace
        elif is_key and ch in "=:#!":
            out.append("\\" + ch)  # would end the key, or start a comment
        elif " " <= ch <= "~":
            out.append(ch)
        else:  # \\uXXXX, as UTF-16 code units (a pair for characters beyond the BMP)
            units = ch.encode("utf-16-be")
            out.extend(f"\\u{units[j]:02X}{units[j + 1]:02X}" for j in range(0, len(units), 2))
    return "".join(out)


def log4j_properties(properties: Mapping[str, str]) -> str:
    """A log4j classification (``hadoop-log4j``, ``spark-log4j2``) as lines of a properties file."""
    return "".join(
        f"{java_escape(name, True)}={java_escape(value, False)}\n"
        for name, value in sorted(properties.items())
    )
