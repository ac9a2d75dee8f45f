// Package awss3 is the store backend on aws-sdk-go-v2's S3 client, for AWS S3 itself: the SDK's
// default credential chain (environment, shared config and SSO, a function's or an instance's role
// through its metadata service), its request checksums, and S3's conditional writes
// (If-None-Match: * and If-Match). The s3 backend (minio-go) stays the one for MinIO, Garage and
// SeaweedFS; both pass the same conformance suite on MinIO, versitygw and SeaweedFS (docs/store.md
// compares them).
//
// URL form: awss3://BUCKET[/KEY-PREFIX]?region=us-east-1[&endpoint=https://…][&path_style=true], the
// same parameters as s3:// (parsed by the s3 package). Without an endpoint the SDK's own for the
// region is used.
package awss3

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"

	"github.com/pulsehq/pulse/functions/store"
	minios3 "github.com/pulsehq/pulse/functions/store/s3"
)

func init() {
	store.Register("awss3", func(ctx context.Context, u *url.URL) (store.Store, error) {
		c, err := minios3.ParseURL(u)
		if err != nil {
			return nil, err
		}
		return New(ctx, Config{Bucket: c.Bucket, Prefix: c.Prefix, Endpoint: c.Endpoint, Region: c.Region, PathStyle: c.PathStyle != nil && *c.PathStyle})
	})
}

// IAMActions are the S3 actions this backend calls (GetObject also for HEAD; PutObject for every write,
// conditional ones included). infra/aws/template.yaml is checked against this list.
var IAMActions = []string{"s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:ListBucket"}

// Config is what a store URL says about a bucket.
type Config struct {
	Bucket, Prefix string
	// Endpoint, when set, replaces the SDK's endpoint for the region (MinIO and versitygw in tests).
	Endpoint  string
	Region    string
	PathStyle bool
	// AWS, when set, is used instead of the SDK's default configuration (tests give static keys).
	AWS *aws.Config
}

// Store is a store.Store on one bucket through aws-sdk-go-v2.
type Store struct {
	client         *s3.Client
	bucket, prefix string
	where          string
}

var _ store.Store = (*Store)(nil)

// maxConns bounds the connections to the endpoint, as the s3 backend does.
const maxConns = 64

// New builds a Store. It does not contact S3; the first operation (and store.Probe at start-up)
// reports an unreachable or refusing bucket.
func New(ctx context.Context, c Config) (*Store, error) {
	var cfg aws.Config
	if c.AWS != nil {
		cfg = c.AWS.Copy()
	} else {
		var err error
		if cfg, err = awsconfig.LoadDefaultConfig(ctx, awsconfig.WithRegion(c.Region)); err != nil {
			return nil, fmt.Errorf("aws configuration: %w", err)
		}
	}
	if c.Region != "" {
		cfg.Region = c.Region
	}
	hc := awshttp.NewBuildableClient().WithTransportOptions(func(t *http.Transport) {
		t.DialContext = (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext
		t.ResponseHeaderTimeout = 30 * time.Second
		t.MaxConnsPerHost, t.MaxIdleConnsPerHost = maxConns, maxConns
	})
	cfg.HTTPClient = hc
	cfg.RetryMaxAttempts = 3
	client := s3.NewFromConfig(cfg, func(o *s3.Options) {
		if c.Endpoint != "" {
			o.BaseEndpoint = aws.String(c.Endpoint)
		}
		o.UsePathStyle = c.PathStyle || c.Endpoint != ""
	})
	where := c.Endpoint
	if where == "" {
		where = "AWS S3 in " + cfg.Region
	}
	return &Store{client: client, bucket: c.Bucket, prefix: c.Prefix, where: where}, nil
}

// Get implements store.Store.
func (s *Store) Get(ctx context.Context, key string, opts store.GetOptions) (*store.Object, error) {
	if err := store.ValidateKey(key); err != nil {
		return nil, fmt.Errorf("get: %w", err)
	}
	in := &s3.GetObjectInput{Bucket: &s.bucket, Key: aws.String(s.prefix + key)}
	if opts.IfNoneMatch != "" {
		in.IfNoneMatch = aws.String(`"` + opts.IfNoneMatch + `"`)
	}
	out, err := s.client.GetObject(ctx, in)
	if err != nil {
		return nil, s.wrap("get", key, err, false)
	}
	return &store.Object{ObjectInfo: store.ObjectInfo{Key: key, Size: aws.ToInt64(out.ContentLength), ETag: etag(out.ETag), LastModified: aws.ToTime(out.LastModified)}, Body: out.Body}, nil
}

// Put implements store.Store. The body is sent as one PutObject (objects the hub writes are small,
// and a conditional write must be one request to be atomic); a body that cannot seek is read into
// memory first, because the SDK signs and checksums it before sending.
func (s *Store) Put(ctx context.Context, key string, body io.Reader, size int64, opts store.PutOptions) (store.ObjectInfo, error) {
	if err := store.ValidatePut(key, size, opts); err != nil {
		return store.ObjectInfo{}, err
	}
	rs, ok := body.(io.ReadSeeker)
	if !ok {
		b, err := io.ReadAll(io.LimitReader(body, size+1))
		if err != nil {
			return store.ObjectInfo{}, fmt.Errorf("put %s: read the body: %w", key, err)
		}
		rs = bytes.NewReader(b)
	}
	in := &s3.PutObjectInput{Bucket: &s.bucket, Key: aws.String(s.prefix + key), Body: rs, ContentLength: aws.Int64(size)}
	if opts.ContentType != "" {
		in.ContentType = aws.String(opts.ContentType)
	}
	switch {
	case opts.CreateOnly:
		in.IfNoneMatch = aws.String("*")
	case opts.IfMatch != "":
		in.IfMatch = aws.String(`"` + opts.IfMatch + `"`)
	}
	var (
		out       *s3.PutObjectOutput
		err       error
		ambiguous bool // an attempt failed without an answer: it may have landed
	)
	for attempt := 0; ; attempt++ {
		if _, serr := rs.Seek(0, io.SeekStart); serr != nil {
			return store.ObjectInfo{}, fmt.Errorf("put %s: rewind the body: %w", key, serr)
		}
		out, err = s.client.PutObject(ctx, in)
		if err == nil || attempt == 4 || ctx.Err() != nil {
			break
		}
		// The s3 backend's retries, for the same reasons (see its Put): 409 while another
		// conditional write of the key is in flight (AWS), a reset after an early 412 (versitygw), a
		// key's parent directory pruned by a concurrent delete (versitygw 409, MinIO 403).
		status, code := statusOf(err)
		transport := status == 0 && isTransportError(err)
		prunedDir := code == "ExistingObjectIsDirectory" || code == "AccessDenied" && attempt == 0
		if !prunedDir && (!opts.CreateOnly || status != http.StatusConflict && !transport) {
			break
		}
		ambiguous = ambiguous || transport
		select {
		case <-ctx.Done():
			return store.ObjectInfo{}, fmt.Errorf("put %s: %w", key, ctx.Err())
		case <-time.After(time.Duration(50*(attempt+1)) * time.Millisecond):
		}
	}
	if status, _ := statusOf(err); err != nil && ambiguous && status == http.StatusPreconditionFailed {
		if info, ok := s.landed(ctx, key, rs); ok {
			return info, nil
		}
	}
	if err != nil {
		return store.ObjectInfo{}, s.wrap("put", key, err, opts.CreateOnly)
	}
	return store.ObjectInfo{Key: key, Size: size, ETag: etag(out.ETag), LastModified: time.Now()}, nil
}

// landed reports whether the object under key holds exactly body's bytes (its ETag is their MD5), for
// a create-only write whose earlier attempt may have landed unanswered.
func (s *Store) landed(ctx context.Context, key string, body io.ReadSeeker) (store.ObjectInfo, bool) {
	if _, err := body.Seek(0, io.SeekStart); err != nil {
		return store.ObjectInfo{}, false
	}
	h := md5.New()
	if _, err := io.Copy(h, body); err != nil {
		return store.ObjectInfo{}, false
	}
	out, err := s.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &s.bucket, Key: aws.String(s.prefix + key)})
	if err != nil || etag(out.ETag) != hex.EncodeToString(h.Sum(nil)) {
		return store.ObjectInfo{}, false
	}
	return store.ObjectInfo{Key: key, Size: aws.ToInt64(out.ContentLength), ETag: etag(out.ETag), LastModified: aws.ToTime(out.LastModified)}, true
}

// List implements store.Store.
func (s *Store) List(ctx context.Context, prefix, startAfter string, limit int) (store.Page, error) {
	if limit <= 0 {
		limit = store.DefaultListLimit
	}
	in := &s3.ListObjectsV2Input{Bucket: &s.bucket, Prefix: aws.String(s.prefix + prefix), MaxKeys: aws.Int32(int32(min(limit, 1000)))}
	if startAfter != "" {
		in.StartAfter = aws.String(s.prefix + startAfter)
	}
	var page store.Page
	p := s3.NewListObjectsV2Paginator(s.client, in)
	for p.HasMorePages() {
		out, err := p.NextPage(ctx)
		if err != nil {
			return store.Page{}, s.wrap("list", prefix, err, false)
		}
		for _, o := range out.Contents {
			if len(page.Objects) == limit {
				page.Truncated = true
				return page, nil
			}
			page.Objects = append(page.Objects, info(strings.TrimPrefix(aws.ToString(o.Key), s.prefix), o))
		}
		if len(page.Objects) == limit {
			page.Truncated = aws.ToBool(out.IsTruncated)
			return page, nil
		}
	}
	return page, nil
}

// Delete implements store.Store.
func (s *Store) Delete(ctx context.Context, key string) error {
	if err := store.ValidateKey(key); err != nil {
		return fmt.Errorf("delete: %w", err)
	}
	if _, err := s.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &s.bucket, Key: aws.String(s.prefix + key)}); err != nil {
		if werr := s.wrap("delete", key, err, false); errors.Is(werr, store.ErrNotFound) {
			return nil
		} else {
			return werr
		}
	}
	return nil
}

func info(key string, o types.Object) store.ObjectInfo {
	return store.ObjectInfo{Key: key, Size: aws.ToInt64(o.Size), ETag: etag(o.ETag), LastModified: aws.ToTime(o.LastModified)}
}

func etag(p *string) string { return strings.Trim(aws.ToString(p), `"`) }

// statusOf is an error's HTTP status (0 without an answer) and S3 error code.
func statusOf(err error) (int, string) {
	if err == nil {
		return 0, ""
	}
	status := 0
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		status = re.HTTPStatusCode()
	}
	var ae smithy.APIError
	code := ""
	if errors.As(err, &ae) {
		code = ae.ErrorCode()
	}
	return status, code
}

func isTransportError(err error) bool {
	var netErr net.Error
	return errors.As(err, &netErr) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, io.ErrUnexpectedEOF) || strings.Contains(err.Error(), "connection reset")
}

// wrap turns an SDK error into a store sentinel where one applies, else a message an operator can act on.
func (s *Store) wrap(op, key string, err error, createOnly bool) error {
	switch {
	case errors.Is(err, context.Canceled):
		return fmt.Errorf("%s %s: %w", op, key, context.Canceled)
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("%s %s: %w", op, key, context.DeadlineExceeded)
	}
	status, code := statusOf(err)
	var nsk *types.NoSuchKey
	switch {
	case status == http.StatusNotModified:
		return fmt.Errorf("%s %s: %w", op, key, store.ErrNotModified)
	case errors.As(err, &nsk) || code == "NoSuchKey" || status == http.StatusNotFound && op == "get":
		return fmt.Errorf("%s %s: %w", op, key, store.ErrNotFound)
	case status == http.StatusPreconditionFailed && createOnly:
		return fmt.Errorf("%s %s: %w", op, key, store.ErrExists)
	case status == http.StatusPreconditionFailed:
		return fmt.Errorf("%s %s: %w", op, key, store.ErrPreconditionFailed)
	case code == "NoSuchBucket":
		return fmt.Errorf("%s %s: bucket %q does not exist on %s (create it, or run `pulse init`): %w", op, key, s.bucket, s.where, err)
	case code == "InvalidAccessKeyId" || code == "SignatureDoesNotMatch" || code == "AccessDenied" || status == http.StatusForbidden:
		return fmt.Errorf("%s %s: %s refused the credentials (check the SDK's credential chain: AWS_PROFILE, the function's or instance's role, and the bucket policy): %w", op, key, s.where, err)
	}
	var netErr net.Error
	if errors.As(err, &netErr) || strings.Contains(err.Error(), "connection refused") {
		return fmt.Errorf("%s %s: cannot reach %s: %w", op, key, s.where, err)
	}
	return fmt.Errorf("%s %s: %w", op, key, err)
}
