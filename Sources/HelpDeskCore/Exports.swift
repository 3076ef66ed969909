/// Everything that imports the core also speaks the protocol (errors, views).
@_exported import HelpDeskProtocol
