"""Alertmanager label matchers: the syntax, semantics and error reasons SREs know from amtool."""

from __future__ import annotations

import dataclasses
import re

import pytest

from detector.ruleset.matchers import (
    Matcher,
    MatcherError,
    MatchOp,
    matches_all,
    parse_matcher,
    parse_matchers,
)

EQ, NE, RE, NRE = MatchOp.EQUAL, MatchOp.NOT_EQUAL, MatchOp.REGEX, MatchOp.NOT_REGEX


class TestParseMatcher:
    @pytest.mark.parametrize(
        ("text", "name", "op", "value"),
        [
            pytest.param(
                'alertname="PgBouncerPoolSaturated"',
                "alertname",
                EQ,
                "PgBouncerPoolSaturated",
                id="equal quoted",
            ),
            pytest.param("env!=prod", "env", NE, "prod", id="not equal unquoted"),
            pytest.param(
                'severity=~"page|critical"', "severity", RE, "page|critical", id="regex quoted"
            ),
            pytest.param('instance!~".*:9127"', "instance", NRE, ".*:9127", id="not regex quoted"),
            pytest.param(
                "severity=~page|critical", "severity", RE, "page|critical", id="regex unquoted"
            ),
            pytest.param('  name = "x"  ', "name", EQ, "x", id="spaces around tokens"),
            pytest.param('name\t!=\t"x"', "name", NE, "x", id="tabs around tokens"),
            pytest.param("env = prod ", "env", EQ, "prod", id="unquoted value is stripped"),
            pytest.param('env=""', "env", EQ, "", id="empty quoted value"),
            pytest.param("env=", "env", EQ, "", id="empty unquoted value"),
            pytest.param('msg="say \\"hi\\""', "msg", EQ, 'say "hi"', id="escaped quote"),
            pytest.param('path="C:\\\\tmp"', "path", EQ, "C:\\tmp", id="escaped backslash"),
            pytest.param('msg="a\\nb\\tc"', "msg", EQ, "a\nb\tc", id="newline and tab escapes"),
            pytest.param('code=~"\\\\d+"', "code", RE, "\\d+", id="go escaped regex backslash"),
            pytest.param('code=~"\\d+"', "code", RE, "\\d+", id="unknown escape kept literally"),
            pytest.param('host=~"db\\.shop"', "host", RE, "db\\.shop", id="escaped regex dot"),
            pytest.param('x="a,b}"', "x", EQ, "a,b}", id="comma and brace inside quotes"),
            pytest.param('x="a b"', "x", EQ, "a b", id="space inside quotes"),
            pytest.param('x="Grüße ✓"', "x", EQ, "Grüße ✓", id="utf-8 value"),
            pytest.param('_job_2="x"', "_job_2", EQ, "x", id="underscore and digits in name"),
            pytest.param(
                '"service.name"="checkout"',
                "service.name",
                EQ,
                "checkout",
                id="quoted utf-8 label name",
            ),
            pytest.param('"a \\"b\\""!="x"', 'a "b"', NE, "x", id="escapes in quoted name"),
        ],
    )
    def test_parses(self, text: str, name: str, op: MatchOp, value: str) -> None:
        matcher = parse_matcher(text)

        assert (matcher.name, matcher.op, matcher.value) == (name, op, value)

    @pytest.mark.parametrize(
        ("text", "reason"),
        [
            pytest.param("", "empty matcher", id="empty input"),
            pytest.param("   ", "empty matcher", id="whitespace only"),
            pytest.param('="x"', 'expected label name, found "=\\"x\\""', id="missing name"),
            pytest.param('1abc="x"', 'invalid label name "1abc"', id="name starts with digit"),
            pytest.param('foo-bar="x"', 'invalid label name "foo-bar"', id="dash in name"),
            pytest.param('über="x"', 'invalid label name "über"', id="unquoted utf-8 name"),
            pytest.param('""="x"', "empty label name", id="empty quoted name"),
            pytest.param('"abc', "unterminated quoted label name", id="unterminated name"),
            pytest.param(
                "env", 'expected one of = != =~ !~ after label name "env"', id="missing operator"
            ),
            pytest.param(
                'env "prod"',
                'expected one of = != =~ !~ after label name "env"',
                id="space instead of operator",
            ),
            pytest.param("env==prod", 'unknown operator "=="', id="double equals"),
            pytest.param('env~"prod"', 'unknown operator "~"', id="tilde alone"),
            pytest.param('env="prod', "unterminated quoted value", id="unterminated value"),
            pytest.param('env="prod\\"', "unterminated quoted value", id="escaped closing quote"),
            pytest.param(
                'x=~"a("',
                'invalid regex "a(": missing ), unterminated subpattern',
                id="unbalanced parenthesis",
            ),
            pytest.param(
                'x!~"[z-a]"', 'invalid regex "[z-a]": bad character range', id="bad range"
            ),
            pytest.param(
                'x=~"a{99999999999}"', 'invalid regex "a{99999999999}"', id="huge repeat count"
            ),
            pytest.param(
                'env="prod" x', 'unexpected text "x" after matcher', id="trailing garbage"
            ),
            pytest.param('env="prod",', 'unexpected text ","', id="second matcher separator"),
            pytest.param("env=prod x", 'unquoted value "prod x" contains whitespace', id="space"),
            pytest.param('env=pr"od', "contains a double quote", id="quote in unquoted value"),
            pytest.param('{env="prod"}', "unexpected opening brace", id="braces around one"),
        ],
    )
    def test_rejects(self, text: str, reason: str) -> None:
        with pytest.raises(MatcherError, match=re.escape(reason)):
            parse_matcher(text)


class TestMatches:
    @pytest.mark.parametrize(
        ("text", "labels", "expected"),
        [
            pytest.param('env="prod"', {"env": "prod"}, True, id="equal hit"),
            pytest.param('env="prod"', {"env": "staging"}, False, id="equal miss"),
            pytest.param('env="prod"', {}, False, id="equal on missing label"),
            pytest.param('env="Prod"', {"env": "prod"}, False, id="equal is case sensitive"),
            pytest.param('env=""', {}, True, id="missing label equals empty"),
            pytest.param('env=""', {"env": "prod"}, False, id="present label is not empty"),
            pytest.param('env!="prod"', {}, True, id="not equal on missing label"),
            pytest.param('env!="prod"', {"env": "prod"}, False, id="not equal same value"),
            pytest.param('env!="prod"', {"env": "dev"}, True, id="not equal other value"),
            pytest.param('env!=""', {}, False, id="not empty on missing label"),
            pytest.param('svc=~"check"', {"svc": "check"}, True, id="regex exact"),
            pytest.param('svc=~"check"', {"svc": "checkout"}, False, id="regex anchored at end"),
            pytest.param('svc=~"out"', {"svc": "checkout"}, False, id="regex anchored at start"),
            pytest.param('svc=~"check.*"', {"svc": "checkout"}, True, id="regex explicit wildcard"),
            pytest.param(
                'severity=~"page|critical"', {"severity": "critical"}, True, id="alternation hit"
            ),
            pytest.param(
                'severity=~"page|critical"',
                {"severity": "pager"},
                False,
                id="alternation anchored as a whole at end",
            ),
            pytest.param(
                'severity=~"page|critical"',
                {"severity": "xcritical"},
                False,
                id="alternation anchored as a whole at start",
            ),
            pytest.param('env=~".*"', {}, True, id="regex dot star matches missing label"),
            pytest.param('env=~".+"', {}, False, id="regex dot plus rejects missing label"),
            pytest.param('env!~"prod|staging"', {}, True, id="not regex on missing label"),
            pytest.param('env!~".*"', {}, False, id="not regex dot star on missing label"),
            pytest.param('env!~"prod|staging"', {"env": "prod"}, False, id="not regex hit"),
            pytest.param('env!~"prod"', {"env": "production"}, True, id="not regex is anchored"),
            pytest.param('code=~"5\\\\d\\\\d"', {"code": "503"}, True, id="digit class"),
            pytest.param('code=~"5\\\\d\\\\d"', {"code": "5031"}, False, id="digit class anchored"),
            pytest.param('sev=~"(?i)PAGE"', {"sev": "page"}, True, id="inline case flag"),
            pytest.param('sev=~"(?i)PAGE"', {"sev": "pager"}, False, id="inline flag anchored"),
            pytest.param('msg=~".*"', {"msg": "a\nb"}, False, id="dot does not match newline"),
            pytest.param(
                '"service.name"="checkout"',
                {"service.name": "checkout"},
                True,
                id="utf-8 label name",
            ),
            pytest.param('env="prod"', {"env": "prod", "team": "shop"}, True, id="others ignored"),
        ],
    )
    def test_matches(self, text: str, labels: dict[str, str], expected: bool) -> None:
        assert parse_matcher(text).matches(labels) is expected


POOL_ALERT = {"alertname": "PgBouncerPoolSaturated", "severity": "page", "cluster": "eu1"}


class TestMatchesAll:
    @pytest.mark.parametrize(
        ("selector", "expected"),
        [
            pytest.param("{}", True, id="no matchers match everything"),
            pytest.param('{alertname=~"PgBouncer.*", severity="page"}', True, id="all hit"),
            pytest.param('{alertname=~"PgBouncer.*", severity="ticket"}', False, id="one miss"),
            pytest.param('{cluster="eu1", env=""}', True, id="missing label joins the and"),
        ],
    )
    def test_ands_matchers(self, selector: str, expected: bool) -> None:
        assert matches_all(parse_matchers(selector), POOL_ALERT) is expected

    def test_accepts_any_iterable(self) -> None:
        matchers = (parse_matcher(text) for text in ['severity="page"', 'cluster!="us1"'])

        assert matches_all(matchers, POOL_ALERT)


class TestParseMatchers:
    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            pytest.param(
                '{alertname="X", severity=~"page|critical",}',
                [("alertname", EQ, "X"), ("severity", RE, "page|critical")],
                id="braces and trailing comma",
            ),
            pytest.param(
                'alertname="X",severity=~"page|critical"',
                [("alertname", EQ, "X"), ("severity", RE, "page|critical")],
                id="no braces",
            ),
            pytest.param('a="b",', [("a", EQ, "b")], id="trailing comma without braces"),
            pytest.param("{}", [], id="empty braces"),
            pytest.param("  {  }  ", [], id="empty braces with spaces"),
            pytest.param("", [], id="empty input"),
            pytest.param(
                '{path=~"/(cart|checkout),v2", env="prod"}',
                [("path", RE, "/(cart|checkout),v2"), ("env", EQ, "prod")],
                id="comma inside quoted regex",
            ),
            pytest.param(
                '{x=~"a{1,3}"}', [("x", RE, "a{1,3}")], id="regex repetition inside quotes"
            ),
            pytest.param(
                '{msg="a \\"b,c\\"", env="prod"}',
                [("msg", EQ, 'a "b,c"'), ("env", EQ, "prod")],
                id="comma after escaped quote",
            ),
            pytest.param(
                '{\n  a="b",\n  c!="d",\n}',
                [("a", EQ, "b"), ("c", NE, "d")],
                id="one matcher per line",
            ),
            pytest.param(
                "{env=prod, team!~shop|ops}",
                [("env", EQ, "prod"), ("team", NRE, "shop|ops")],
                id="unquoted values end at comma and brace",
            ),
            pytest.param(
                '{"service.name"="checkout", "k8s.ns"!="dev"}',
                [("service.name", EQ, "checkout"), ("k8s.ns", NE, "dev")],
                id="quoted utf-8 names",
            ),
            pytest.param(
                '{a="1", a="2"}', [("a", EQ, "1"), ("a", EQ, "2")], id="duplicate names kept"
            ),
        ],
    )
    def test_parses(self, text: str, expected: list[tuple[str, MatchOp, str]]) -> None:
        matchers = parse_matchers(text)

        assert isinstance(matchers, tuple)
        assert [(m.name, m.op, m.value) for m in matchers] == expected

    @pytest.mark.parametrize(
        ("text", "reason"),
        [
            pytest.param('{a="b"', 'missing closing "}"', id="missing close brace"),
            pytest.param("{", 'missing closing "}"', id="lone open brace"),
            pytest.param('a="b"}', 'unexpected "}" without opening "{"', id="missing open brace"),
            pytest.param('{a="b"}x', 'unexpected text "x" after closing "}"', id="after brace"),
            pytest.param('{a="b",,}', "empty matcher", id="double comma"),
            pytest.param('a="b",,', "empty matcher", id="two trailing commas"),
            pytest.param(',a="b"', "empty matcher", id="leading comma"),
            pytest.param("{,}", "empty matcher", id="only a comma"),
            pytest.param('a="b" c="d"', 'unexpected text "c=', id="missing comma"),
            pytest.param('{a=~"("}', 'invalid regex "("', id="invalid regex in list"),
            pytest.param('{a="b}', "unterminated quoted value", id="unterminated value in list"),
            pytest.param('{a="b", env}', 'after label name "env"', id="missing operator in list"),
            pytest.param("{a=b c}", "contains whitespace", id="space in unquoted value"),
        ],
    )
    def test_rejects(self, text: str, reason: str) -> None:
        with pytest.raises(MatcherError, match=re.escape(reason)):
            parse_matchers(text)


class TestMatcherStr:
    @pytest.mark.parametrize(
        ("matcher", "rendered"),
        [
            pytest.param(Matcher("env", EQ, "prod"), 'env="prod"', id="plain"),
            pytest.param(Matcher("env", NE, ""), 'env!=""', id="empty value"),
            pytest.param(
                Matcher("severity", RE, "page|critical"),
                'severity=~"page|critical"',
                id="regex",
            ),
            pytest.param(Matcher("code", NRE, "5\\d\\d"), 'code!~"5\\\\d\\\\d"', id="backslashes"),
            pytest.param(Matcher("msg", EQ, 'say "hi"'), 'msg="say \\"hi\\""', id="quotes"),
            pytest.param(Matcher("msg", EQ, "a\nb\tc"), 'msg="a\\nb\\tc"', id="newline and tab"),
            pytest.param(Matcher("msg", EQ, "a,b}"), 'msg="a,b}"', id="comma and brace"),
            pytest.param(
                Matcher("service.name", EQ, "checkout"),
                '"service.name"="checkout"',
                id="utf-8 name is quoted",
            ),
        ],
    )
    def test_renders_and_round_trips(self, matcher: Matcher, rendered: str) -> None:
        assert str(matcher) == rendered
        assert parse_matcher(rendered) == matcher
        assert parse_matchers(f"{{{rendered}, {rendered},}}") == (matcher, matcher)


class TestMatcher:
    def test_invalid_regex_is_rejected_on_construction(self) -> None:
        with pytest.raises(MatcherError, match=re.escape('invalid regex "a("')):
            Matcher("x", RE, "a(")

    def test_regex_is_not_compiled_for_equality_ops(self) -> None:
        assert Matcher("x", EQ, "a(").matches({"x": "a("})

    def test_plain_string_operator_is_coerced(self) -> None:
        matcher = Matcher("x", "=~", "a|b")  # type: ignore[arg-type]

        assert matcher.op is RE
        assert matcher.matches({"x": "b"})

    def test_equality_and_hash_ignore_compiled_regex(self) -> None:
        first, second = parse_matcher('x=~"a|b"'), parse_matcher("x =~ a|b")

        assert first == second
        assert len({first, second}) == 1
        assert "_regex" not in repr(first)

    def test_is_frozen(self) -> None:
        matcher = parse_matcher('env="prod"')

        with pytest.raises(dataclasses.FrozenInstanceError):
            matcher.value = "dev"  # type: ignore[misc]

    def test_replace_recompiles_regex(self) -> None:
        matcher = dataclasses.replace(parse_matcher('x=~"a"'), value="b|c")

        assert matcher.matches({"x": "c"})
        assert not matcher.matches({"x": "a"})

    def test_error_is_a_value_error_for_validators(self) -> None:
        assert issubclass(MatcherError, ValueError)

    def test_operators_render_as_alertmanager_spells_them(self) -> None:
        assert [str(op) for op in MatchOp] == ["=", "!=", "=~", "!~"]
