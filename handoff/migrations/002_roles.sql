-- Accounts are shared by agents, supervisors, knowledge editors and admins: roles say what each
-- may do. Existing accounts were agents.
ALTER TABLE handoff_agent ADD COLUMN roles text[] NOT NULL DEFAULT '{agent}'
    CHECK (roles <@ ARRAY['admin', 'supervisor', 'agent', 'editor']::text[] AND cardinality(roles) > 0);
