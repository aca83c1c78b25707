-- Which process made a submit call still marked as under way (its lease-holder name). A
-- process that is gone (its holder file unlocked: killed, or stopped) cannot be sending any
-- more, so its cut-off call is failed at once instead of after the 15 minutes a call in a
-- live process might still take.
ALTER TABLE jobs ADD COLUMN send_owner TEXT;
