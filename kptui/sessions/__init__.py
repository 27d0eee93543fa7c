"""Sessions: the msgpack file format (format.py), recording and replaying a debugger
(replay.py) and the pcap export (pcap.py). No UI here: the app and the CLI use these."""
