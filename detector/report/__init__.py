"""The post-incident report and the incident statistics: the facts of a post-mortem (times to
detect, acknowledge, tell customers and resolve; pages; notices and their promises; impact and
its chart), gathered from the store and written as Markdown or HTML."""
