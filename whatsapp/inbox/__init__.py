"""The staff inbox: conversations as threads, staff replies, taking over from the bot
(pause, hand back, handoff keyword, idle resume) and opt-out. The bot-side rules that read
this state live in bots.handoff."""
