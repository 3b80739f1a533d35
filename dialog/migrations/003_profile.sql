-- Who the customer is, as the site that embeds the widget told it: name, email, tier, region,
-- product, and whether the site signed it (verified). NULL: the site told nothing.
ALTER TABLE dialog_session ADD COLUMN profile jsonb;
