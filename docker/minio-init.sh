#!/bin/sh
# The compose minio-init job: the only user of MinIO's root account. Creates the warehouse
# bucket and the application's own user (K2_S3_ACCESS_KEY_ID), whose policy allows the
# warehouse bucket and nothing else. Idempotent: runs on every `docker compose up`.
set -eu
s=${K2_SECRETS_DIR:-/run/secrets}
# Credentials in the environment (mc's alias form), not on a command line.
MC_HOST_root="http://$(cat "$s/minio_root_user"):$(cat "$s/minio_root_password")@minio:9000"
export MC_HOST_root
app_user=$(cat "$s/s3_access_key_id")
policy=/tmp/k2-warehouse-policy.json
cat >"$policy" <<'JSON'
{
  "Version": "2012-10-17",
  "Statement": [
    {"Effect": "Allow",
     "Action": ["s3:GetBucketLocation", "s3:ListBucket", "s3:ListBucketMultipartUploads"],
     "Resource": ["arn:aws:s3:::warehouse"]},
    {"Effect": "Allow",
     "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject",
                "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"],
     "Resource": ["arn:aws:s3:::warehouse/*"]}
  ]
}
JSON
mc mb --ignore-existing root/warehouse
mc admin policy create root k2-warehouse "$policy"
# mc takes the new user's secret as an argument: it is seen only inside this one-shot container.
mc admin user add root "$app_user" "$(cat "$s/s3_secret_access_key")"
mc admin policy attach root k2-warehouse --user "$app_user" 2>/dev/null || true  # already attached
mc admin user info root "$app_user" | grep -q k2-warehouse  # the policy is in place, or fail
echo "minio-init: bucket warehouse, user $app_user limited to it"
