-- 0018: a failed delivery attempt is recorded as a class (the receiver's status family, a
-- timeout, a connection failure, ...), which the deliveries pages show, instead of the error
-- text itself: that text came from the network stack or the receiver and could describe
-- what sits behind a URL, so it is only logged now. The classes are
-- workflows::rules::AttemptFailure's texts.

ALTER TABLE workflow_delivery_attempts ADD COLUMN failure TEXT
  CHECK (failure IN ('timeout', 'connection_failed', 'http_3xx', 'http_4xx', 'http_5xx',
                     'invalid_response', 'not_sent'));

-- The attempts already made, classed from their status code, or from the words 0015's code
-- wrote when there was none ('no answer within N ms' on a timeout; the secret or the request
-- could not be made ready; else the fetch failed).
UPDATE workflow_delivery_attempts SET failure = CASE
    WHEN status_code BETWEEN 200 AND 299 THEN NULL
    WHEN status_code BETWEEN 300 AND 399 THEN 'http_3xx'
    WHEN status_code BETWEEN 400 AND 499 THEN 'http_4xx'
    WHEN status_code BETWEEN 500 AND 599 THEN 'http_5xx'
    WHEN status_code IS NOT NULL THEN 'invalid_response'
    WHEN error LIKE '%no answer within%' THEN 'timeout'
    WHEN error LIKE 'KEY_ENCRYPTION_KEY%' OR error LIKE 'the workflow''s secret%'
      OR error LIKE 'bad request%' THEN 'not_sent'
    ELSE 'connection_failed'
  END;

ALTER TABLE workflow_delivery_attempts DROP COLUMN error;
