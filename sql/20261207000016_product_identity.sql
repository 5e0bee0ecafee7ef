-- Output product identity (see the domain's `identity` module): a product's identity is its name
-- without the quality flag (`FSC_<sensing>_<mission>_T<tile>_V<baseline>`; the last `_<digit>` of
-- an HR-S&I name is a flag, not a version). At most one job holds an identity, and only its holder
-- may write the product or announce it.

-- The SQL twin of `swath_domain::identity::product_identity` (a test checks that they agree).
CREATE FUNCTION product_identity(name text) RETURNS text LANGUAGE sql IMMUTABLE STRICT AS $$
    SELECT regexp_replace(name, '^(.*_V[0-9]+)_[0-9]$', '\1')
$$;

-- Who holds each identity, and where its product is committed. A worker reserves its products
-- before it uploads anything: the reservation is granted to the holder itself, to a job that
-- replaces the holder (a re-run of the same inputs, once the holder is no longer in flight) or
-- when the holder ended in failure; any other job is refused and nothing is overwritten.
CREATE TABLE product_identities (
    identity    text PRIMARY KEY,
    kind        text NOT NULL,
    job_id      bigint NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    -- The committed path (the last reservation's): one product per path.
    path        text NOT NULL CONSTRAINT product_identities_path_unique UNIQUE,
    -- How many announcements of the identity were written to the outbox: the next one is an update
    -- when this is not 0.
    announced   integer NOT NULL DEFAULT 0 CHECK (announced >= 0),
    reserved_at timestamptz NOT NULL DEFAULT clock_timestamp()
);

CREATE INDEX product_identities_job ON product_identities (job_id);

-- Each announcement is one revision of one identity, with its own message id
-- (`<identity>#<revision>`): two jobs can never announce one revision, and consumers that drop a
-- message id they have seen never drop a different product or an update.
ALTER TABLE publications
    ADD COLUMN identity   text,
    ADD COLUMN revision   integer,
    ADD COLUMN message_id text;

-- Rows written before: numbered in outbox order per identity (the duplicates this migration ends
-- become successive revisions rather than one id).
UPDATE publications p SET identity = n.identity, revision = n.revision,
       message_id = n.identity || '#' || n.revision
FROM (SELECT id, product_identity(product_id) AS identity,
             row_number() OVER (PARTITION BY product_identity(product_id) ORDER BY id)::integer AS revision
      FROM publications) n
WHERE p.id = n.id;

ALTER TABLE publications
    ALTER COLUMN identity SET NOT NULL,
    ALTER COLUMN revision SET NOT NULL,
    ALTER COLUMN message_id SET NOT NULL,
    ADD CONSTRAINT publications_revision_positive CHECK (revision >= 1),
    ADD CONSTRAINT publications_identity_revision_unique UNIQUE (identity, revision),
    ADD CONSTRAINT publications_message_id_unique UNIQUE (message_id);

-- Identities announced before this migration are held by the job that announced them last, at
-- the path its results give.
INSERT INTO product_identities (identity, kind, job_id, path, announced)
SELECT DISTINCT ON (p.identity) p.identity, p.kind, p.job_id,
       coalesce((SELECT e ->> 'path' FROM jobs j, jsonb_array_elements(j.results -> 'products') e
                 WHERE j.id = p.job_id AND e ->> 'kind' = p.kind
                   AND product_identity(regexp_replace(e ->> 'path', '^.*/', '')) = p.identity
                 LIMIT 1), p.identity),
       p.revision
FROM publications p ORDER BY p.identity, p.revision DESC
ON CONFLICT DO NOTHING;
