"""Widgets of the debugger screen: diagram, packet tree, rule list, trace log, timeline."""

from kptui.widgets.diagram import DiagramState, PacketDiagram
from kptui.widgets.packet_tree import PacketTree
from kptui.widgets.rules import ChainView, RuleList
from kptui.widgets.timeline import Timeline
from kptui.widgets.tracelog import LogEntry, TraceLog

__all__ = ["ChainView", "DiagramState", "LogEntry", "PacketDiagram", "PacketTree", "RuleList",
           "Timeline", "TraceLog"]
