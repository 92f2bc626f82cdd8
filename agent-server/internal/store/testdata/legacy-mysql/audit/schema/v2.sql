-- v2: the agent a request reached, the client's address and the HTTP status.
ALTER TABLE audit
  ADD COLUMN agent  VARCHAR(128) NOT NULL DEFAULT '' AFTER target,
  ADD COLUMN remote VARCHAR(255) NOT NULL DEFAULT '' AFTER agent,
  ADD COLUMN status INT NOT NULL DEFAULT 0 AFTER remote,
  ADD KEY audit_agent (agent, at);
