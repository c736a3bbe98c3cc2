"""``ecr-connector setup``: the seeds' installer questions, answered once, into a config file.

``questions`` holds what is asked and the rule each answer obeys (the config
loader's own rules), ``wizard`` asks them on a terminal, ``answers`` reads them
from a file instead, ``config_file`` writes the result, ``serial_ports`` lists
the candidate terminal devices.
"""
