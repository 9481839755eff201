-- The host uid a workspace runs as when wsd gives each workspace its own (wsd running as
-- root): assigned at its first provision, kept for its life, never shared.
ALTER TABLE workspaces ADD COLUMN host_uid BIGINT;
CREATE UNIQUE INDEX workspaces_by_host_uid ON workspaces (host_uid);
