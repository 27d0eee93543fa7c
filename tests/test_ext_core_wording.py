"""The core modules on libxtables' guided parser: -j MARK, TOS, DSCP, TTL, -m icmp, udp
(and tcp's own getopt parser).

Every saved line and refusal below is what iptables-nft 1.8.9 printed on this
machine (Linux 6.18) for the same rule; "Invalid argument" marks a rule iptables
passed on and the kernel refused (RULE_APPEND failed). The newly accepted
spellings are walked against the kernel in
tests/kernel/scenarios/ipt-icmp-udp-spellings.toml.
"""

from __future__ import annotations

import pytest
from ext_rules import refusal, saved


@pytest.mark.parametrize("table,chain,rule,line", [
    ("filter", "INPUT", "-j MARK --set-mark 5/0xff", "-j MARK --set-xmark 0x5/0xff"),
    ("filter", "INPUT", "-j MARK --and-mark 0xff", "-j MARK --set-xmark 0x0/0xffffff00"),
    ("filter", "INPUT", "-j MARK --set-xmark=7", "-j MARK --set-xmark 0x7/0xffffffff"),
    ("mangle", "PREROUTING", "-j TOS --set-tos minimize-delay", "-j TOS --set-tos 0x10/0x3f"),
    # dscp_helper.c class_to_dscp: a name that starts with a class is that class
    ("mangle", "PREROUTING", "-j DSCP --set-dscp-class AF11x", "-j DSCP --set-dscp 0x0a"),
    ("mangle", "PREROUTING", "-j DSCP --set-dscp-class cs1", "-j DSCP --set-dscp 0x08"),
    # libxt_icmp.h: aliases, prefixes, and a code range saved by its first code
    ("filter", "INPUT", "-p icmp --icmp-type ping", "-p icmp -m icmp --icmp-type 8"),
    ("filter", "INPUT", "-p icmp --icmp-type pong", "-p icmp -m icmp --icmp-type 0"),
    ("filter", "INPUT", "-p icmp --icmp-type ECHO-REQ", "-p icmp -m icmp --icmp-type 8"),
    ("filter", "INPUT", "-p icmp --icmp-type 3/1:3", "-p icmp -m icmp --icmp-type 3/1"),
    ("filter", "INPUT", "-p icmp --icmp-type 3:3", "-p icmp -m icmp --icmp-type 3"),
    ("filter", "INPUT", "-p icmp --icmp-type 255", "-p icmp -m icmp --icmp-type any"),
    # udp reads ports as getaddrinfo does: decimal, unordered ranges, "" is 0
    ("filter", "INPUT", "-p udp --dport 010", "-p udp -m udp --dport 10"),
    ("filter", "INPUT", "-p udp --dport 80:70", "-p udp -m udp --dport 80:70"),
    ("filter", "INPUT", "-p udp --dport ''", "-p udp -m udp --dport 0"),
    ("filter", "INPUT", "-p udp --dport :", "-p udp -m udp"),
    # tcp (xtables_parse_port, base 0) keeps reading 010 as 8
    ("filter", "INPUT", "-p tcp --dport 010", "-p tcp -m tcp --dport 8"),
])
def test_saved_as_iptables_save_prints_them(table, chain, rule, line):
    assert saved(rule, table, chain) == f"-A {chain} {line}"


@pytest.mark.parametrize("table,chain,rule,words", [
    # MARK: the five options exclude each other (paired in option-id order) and themselves
    ("filter", "INPUT", "-j MARK", "MARK: One of the --set-xmark, --{and,or,xor,set}-mark "
     "options is required"),
    ("filter", "INPUT", "-j MARK --set-xmark 4294967296",
     'MARK: bad integer value for option "--set-xmark", or out of range.'),
    ("filter", "INPUT", "-j MARK --set-xmark 1x",
     'MARK: trailing garbage after value for option "--set-xmark".'),
    ("filter", "INPUT", "-j MARK --and-mark 1/2",
     'MARK: bad value for option "--and-mark", or out of range (0-4294967295).'),
    ("filter", "INPUT", "-j MARK --set-xmark 1 --set-xmark 2",
     'MARK: option "--set-xmark" can only be used once.'),
    ("filter", "INPUT", "-j MARK --xor-mark 1 --set-mark 2",
     'MARK: option "--set-mark" cannot be used together with "--xor-mark".'),
    ("filter", "INPUT", "-j MARK ! --set-mark 1", 'MARK: option "--set-mark" cannot be inverted.'),
    # TOS
    ("mangle", "PREROUTING", "-j TOS", "TOS: An action is required"),
    ("mangle", "PREROUTING", "-j TOS --set-tos 0x10/zz", 'Illegal value: "0x10/zz"'),
    ("mangle", "PREROUTING", "-j TOS --set-tos 256", 'Symbolic name "256" is unknown'),
    ("mangle", "PREROUTING", "-j TOS --and-tos 256",
     'TOS: bad value for option "--and-tos", or out of range (0-255).'),
    ("mangle", "PREROUTING", "-j TOS --xor-tos 1 --or-tos 2",
     'TOS: option "--or-tos" cannot be used together with "--xor-tos".'),
    # DSCP
    ("mangle", "PREROUTING", "-j DSCP", "DSCP target: Parameter --set-dscp is required"),
    ("mangle", "PREROUTING", "-j DSCP --set-dscp-class CS0 --set-dscp 1",
     'DSCP: option "--set-dscp" cannot be used together with "--set-dscp-class".'),
    ("mangle", "PREROUTING", "-j DSCP --set-dscp 1 --set-dscp 2",
     'DSCP: option "--set-dscp" can only be used once.'),
    ("mangle", "PREROUTING", "-j DSCP --set-dscp-class XX", "Invalid DSCP value `XX'"),
    # TTL: ids set 0, inc 1, dec 2 (the table lists dec before inc)
    ("mangle", "PREROUTING", "-j TTL", "TTL: You must specify an action"),
    ("mangle", "PREROUTING", "-j TTL --ttl-inc 0",
     'TTL: bad value for option "--ttl-inc", or out of range (1-255).'),
    ("mangle", "PREROUTING", "-j TTL --ttl-set 1 --ttl-dec 3 --ttl-inc 2",
     'TTL: option "--ttl-set" cannot be used together with "--ttl-inc".'),
    ("mangle", "PREROUTING", "-j TTL --ttl-set 1 --ttl-set 2",
     'TTL: option "--ttl-set" can only be used once.'),
    # icmp
    ("filter", "INPUT", "-p icmp -m icmp", 'icmp: option "--icmp-type" must be specified'),
    ("filter", "INPUT", "-p icmp --icmp-type p",
     "Ambiguous ICMP type `p': `pong' or `protocol-unreachable'?"),
    ("filter", "INPUT", "-p icmp --icmp-type 3:4", "ICMP type range not supported"),
    ("filter", "INPUT", "-p icmp --icmp-type 3x", "unknown character x"),
    ("filter", "INPUT", "-p icmp --icmp-type 3/x", "Unknown ICMP code `3/x'"),
    ("filter", "INPUT", "-p icmp --icmp-type 256", "Unknown ICMP type `256'"),
    ("filter", "INPUT", "-p icmp --icmp-type 8 --icmp-type 0",
     'icmp: option "--icmp-type" can only be used once.'),
    ("filter", "INPUT", "-p tcp -m icmp --icmp-type 8", "Invalid argument"),
    # udp: a pair of spellings is one option, named by its long spelling
    ("filter", "INPUT", "-p udp --dport -1", 'Port "-1" does not resolve to anything.'),
    ("filter", "INPUT", "-p udp --dport 0x50", 'Port "0x50" does not resolve to anything.'),
    ("filter", "INPUT", "-p udp --dport 80:nosuch",
     'Port "nosuch" does not resolve to anything.'),
    ("filter", "INPUT", "-p udp --dport 1:2:3",
     'udp: Too many components for option "--destination-port" (max: 2)'),
    ("filter", "INPUT", "-p udp --sport 1 --source-port 2",
     'udp: option "--source-port" can only be used once.'),
    ("filter", "INPUT", "-m udp --dport 1", "UDP match requires '-p udp'"),
    ("filter", "INPUT", "-m udp", "Invalid argument"),
    ("filter", "INPUT", "-p tcp -m udp --dport 0:65535", "Invalid argument"),
    # tcp: libxt_tcp's own getopt parser
    ("filter", "INPUT", "-p tcp --dport 1 --destination-port 2",
     "Only one `--destination-port' allowed"),
    ("filter", "INPUT", "-p tcp --syn --syn", "Only one of `--syn' or `--tcp-flags'  allowed"),
    ("filter", "INPUT", "-p tcp --tcp-option 5 --tcp-option 6", "Only one `--tcp-option' allowed"),
    ("filter", "INPUT", "-p tcp --tcp-option 0", 'Bad TCP option "0"'),
    ("filter", "INPUT", "-p tcp --tcp-flags SYN -x", "--tcp-flags requires two args."),
    ("filter", "INPUT", "-m tcp --dport 5", "TCP match requires '-p tcp'"),
    ("filter", "INPUT", "-m tcp --tcp-option 5", "Invalid argument"),
])
def test_refused_in_iptables_words(table, chain, rule, words):
    assert words in refusal(rule, table, chain)
