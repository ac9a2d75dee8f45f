package s3

// IAMActions are the S3 actions this backend calls: GetObject for reads and HEADs, PutObject for
// writes (conditional ones included, and the parts of a multipart upload), AbortMultipartUpload when
// one fails, DeleteObject for sweeps, ListBucket for listings. A least-privilege policy grants these
// on the bucket and the hub's prefix and nothing more; infra/aws/template.yaml is checked against
// this list by a test, so a new call here fails that test until the template grants it.
var IAMActions = []string{"s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload", "s3:DeleteObject", "s3:ListBucket"}
