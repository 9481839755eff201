-- Who set each secret's current value (the actor, as the audit log names it), carried over
-- from the audit log for the secrets set before.
ALTER TABLE org_secrets ADD COLUMN updated_by TEXT;
ALTER TABLE workspace_secrets ADD COLUMN updated_by TEXT;
ALTER TABLE platform_secrets ADD COLUMN updated_by TEXT;
UPDATE org_secrets SET updated_by = (
    SELECT a.actor FROM audit_events a
    WHERE a.action = 'secret.put' AND a.target = 'org/' || org_secrets.org_id || '/secrets/' || org_secrets.key
    ORDER BY a.seq DESC LIMIT 1
);
UPDATE workspace_secrets SET updated_by = (
    SELECT a.actor FROM audit_events a
    WHERE a.action = 'secret.put'
      AND a.target = 'org/' || workspace_secrets.org_id || '/workspaces/' || workspace_secrets.workspace_id || '/secrets/' || workspace_secrets.key
    ORDER BY a.seq DESC LIMIT 1
);
UPDATE platform_secrets SET updated_by = (
    SELECT a.actor FROM audit_events a
    WHERE a.action = 'secret.put' AND a.target = 'platform/secrets/' || platform_secrets.key
    ORDER BY a.seq DESC LIMIT 1
);
