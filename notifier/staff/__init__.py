"""Staff stepping in: holds, contacts made by hand, escalations, tasks, opt-outs."""
