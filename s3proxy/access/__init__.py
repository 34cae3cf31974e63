"""Who may do what: S3 ACL grants, bucket policies, and the one decision that combines them."""
