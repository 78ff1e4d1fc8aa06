-- Data sets hold bars or ticks (trades and level-2 book events, for tick precision). For tick
-- data, `bars` counts events.
ALTER TABLE datasets
    ADD COLUMN kind text NOT NULL DEFAULT 'bars' CHECK (kind IN ('bars', 'ticks'));
