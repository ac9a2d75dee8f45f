// Package s3 is the store backend for S3-compatible object storage (MinIO, AWS S3, Garage, SeaweedFS,
// Ceph RGW, R2, versitygw), built on minio-go.
//
// URL form: s3://BUCKET[/KEY-PREFIX]?endpoint=http://127.0.0.1:9000&region=us-east-1[&path_style=true]
// Credentials come from the standard AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (/ AWS_SESSION_TOKEN)
// variables, or the shared AWS credentials file. The backend never asks an instance metadata service,
// so it makes no request to anything but the configured endpoint.
package s3

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/minio/minio-go/v7/pkg/s3utils"

	"github.com/pulsehq/pulse/functions/store"
)

func init() {
	store.Register("s3", func(ctx context.Context, u *url.URL) (store.Store, error) {
		cfg, err := ParseURL(u)
		if err != nil {
			return nil, err
		}
		return New(cfg)
	})
}

// Config is what a store URL says about an S3 bucket.
type Config struct {
	Bucket string
	// Prefix is prepended to every key, so several hubs (or tests) can share one bucket.
	Prefix string
	// Endpoint is the server's base URL, e.g. http://127.0.0.1:9000; empty means AWS S3 in Region.
	Endpoint string
	Region   string
	// PathStyle forces path-style requests (http://host/bucket/key); nil lets minio-go decide
	// (virtual-host style for AWS, path style elsewhere).
	PathStyle *bool
	// Creds overrides the credentials from the environment (tests use it).
	Creds *credentials.Credentials
}

// ParseURL checks an s3:// URL completely, so that a typo is reported at start-up with the reason.
func ParseURL(u *url.URL) (Config, error) {
	bad := func(format string, args ...any) (Config, error) {
		return Config{}, fmt.Errorf("%w %q: %s", store.ErrInvalidURL, store.Redact(u.String()), fmt.Sprintf(format, args...))
	}
	if u.User != nil {
		return bad("do not put credentials in the URL; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")
	}
	cfg := Config{Bucket: u.Host, Prefix: strings.Trim(u.Path, "/"), Region: "us-east-1"}
	if cfg.Bucket == "" {
		return bad("no bucket; write s3://BUCKET?endpoint=...")
	}
	if err := s3utils.CheckValidBucketNameStrict(cfg.Bucket); err != nil {
		return bad("bucket name %q: %v", cfg.Bucket, err)
	}
	if cfg.Prefix != "" {
		if err := store.ValidateKey(cfg.Prefix); err != nil {
			return bad("key prefix: %v", err)
		}
		cfg.Prefix += "/"
	}
	for name, vals := range u.Query() {
		v := vals[len(vals)-1]
		switch name {
		case "endpoint":
			e, err := url.Parse(v)
			if err != nil || (e.Scheme != "http" && e.Scheme != "https") || e.Host == "" {
				return bad("endpoint %q must be an http:// or https:// URL with a host", v)
			}
			if e.Path != "" && e.Path != "/" {
				return bad("endpoint %q must not have a path; the bucket goes in the URL's host part", v)
			}
			cfg.Endpoint = e.Scheme + "://" + e.Host
		case "region":
			if v == "" {
				return bad("region is empty")
			}
			cfg.Region = v
		case "path_style":
			b, err := strconv.ParseBool(v)
			if err != nil {
				return bad("path_style %q must be true or false", v)
			}
			cfg.PathStyle = &b
		default:
			return bad("unknown parameter %q (known: endpoint, region, path_style)", name)
		}
	}
	return cfg, nil
}

// Store is a store.Store on one S3 bucket.
type Store struct {
	client   *minio.Client
	core     minio.Core
	bucket   string
	prefix   string
	endpoint string
	region   string
}

var _ store.Store = (*Store)(nil)

// New builds a Store. It does not contact the server: an unreachable store is reported by the first
// operation (and by store.Probe at start-up), not by a refusal to start.
func New(cfg Config) (*Store, error) {
	endpoint := cfg.Endpoint
	if endpoint == "" {
		endpoint = "https://s3." + cfg.Region + ".amazonaws.com"
	}
	e, err := url.Parse(endpoint)
	if err != nil {
		return nil, fmt.Errorf("%w: endpoint %q: %v", store.ErrInvalidURL, endpoint, err)
	}
	creds := cfg.Creds
	if creds == nil {
		creds = credentials.NewChainCredentials([]credentials.Provider{
			&credentials.EnvAWS{},
			&credentials.FileAWSCredentials{},
		})
	}
	lookup := minio.BucketLookupAuto
	if cfg.PathStyle != nil {
		lookup = minio.BucketLookupDNS
		if *cfg.PathStyle {
			lookup = minio.BucketLookupPath
		}
	}
	transport, err := minio.DefaultTransport(e.Scheme == "https")
	if err != nil {
		return nil, fmt.Errorf("s3 transport: %w", err)
	}
	// Fail fast on a dead endpoint: the hub reports readiness and retries on its own schedule.
	transport.DialContext = (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	transport.ResponseHeaderTimeout = 30 * time.Second
	// A thousand agents reporting at once must not open a thousand connections to the store (and close
	// all but 16 of them afterwards): requests beyond maxConns wait for a connection, which the store
	// serves faster than it accepts new ones.
	transport.MaxConnsPerHost, transport.MaxIdleConnsPerHost = maxConns, maxConns
	client, err := minio.New(e.Host, &minio.Options{
		Creds:        creds,
		Secure:       e.Scheme == "https",
		Region:       cfg.Region,
		BucketLookup: lookup,
		Transport:    transport,
		MaxRetries:   2,
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %v", store.ErrInvalidURL, err)
	}
	return &Store{client: client, core: minio.Core{Client: client}, bucket: cfg.Bucket, prefix: cfg.Prefix, endpoint: e.Scheme + "://" + e.Host, region: cfg.Region}, nil
}

// Client exposes the minio-go client for operations outside the store interface (bucket creation by
// `pulse init`, test harnesses).
func (s *Store) Client() *minio.Client { return s.client }

// EnsureBucket creates the bucket if it does not exist, for `pulse init`.
func (s *Store) EnsureBucket(ctx context.Context) (bool, error) {
	ok, err := s.client.BucketExists(ctx, s.bucket)
	if err != nil {
		return false, s.wrap("check bucket", s.bucket, err, false)
	}
	if ok {
		return false, nil
	}
	if err := s.client.MakeBucket(ctx, s.bucket, minio.MakeBucketOptions{Region: s.region}); err != nil {
		code := minio.ToErrorResponse(err).Code
		if code == "BucketAlreadyOwnedByYou" || code == "BucketAlreadyExists" {
			return false, nil
		}
		return false, s.wrap("create bucket", s.bucket, err, false)
	}
	return true, nil
}

// Bucket is the bucket this store writes to.
func (s *Store) Bucket() string { return s.bucket }

// Get implements store.Store.
func (s *Store) Get(ctx context.Context, key string, opts store.GetOptions) (*store.Object, error) {
	if err := store.ValidateKey(key); err != nil {
		return nil, fmt.Errorf("get: %w", err)
	}
	var gopts minio.GetObjectOptions
	if opts.IfNoneMatch != "" {
		if err := gopts.SetMatchETagExcept(opts.IfNoneMatch); err != nil {
			return nil, fmt.Errorf("get %s: %w", key, err)
		}
	}
	body, info, _, err := s.core.GetObject(ctx, s.bucket, s.prefix+key, gopts)
	if err != nil {
		return nil, s.wrap("get", key, err, false)
	}
	return &store.Object{ObjectInfo: s.info(key, info), Body: body}, nil
}

// Put implements store.Store.
func (s *Store) Put(ctx context.Context, key string, body io.Reader, size int64, opts store.PutOptions) (store.ObjectInfo, error) {
	if err := store.ValidatePut(key, size, opts); err != nil {
		return store.ObjectInfo{}, err
	}
	popts := minio.PutObjectOptions{ContentType: opts.ContentType}
	switch {
	case opts.CreateOnly:
		popts.SetMatchETagExcept("*")
		// Conditional writes are atomic only as single-part uploads (see store.MaxCreateOnlySize).
		popts.DisableMultipart = true
	case opts.IfMatch != "":
		popts.SetMatchETag(opts.IfMatch)
		popts.DisableMultipart = true
	}
	var (
		up        minio.UploadInfo
		err       error
		ambiguous bool // an attempt failed without an answer: it may have landed
	)
	seeker, canRewind := body.(io.Seeker)
	for attempt := 0; ; attempt++ {
		up, err = s.client.PutObject(ctx, s.bucket, s.prefix+key, body, size, popts)
		if err == nil || !canRewind || attempt == 4 || ctx.Err() != nil {
			break
		}
		// Two failures of a create-only write are worth another try: AWS answers 409
		// ConditionalRequestConflict while another conditional write of the key is in flight, and
		// versitygw answers 412 before reading the body and resets the connection, so the client sees
		// only "connection reset" (measured with 16 writers of 1 MiB). Any write is worth another try
		// when versitygw, on a filesystem, lost the race with a delete pruning the key's empty parent
		// directory (409 ExistingObjectIsDirectory, measured by the conformance suite's PutBesideDelete);
		// MinIO loses the same race now and then with a 403 AccessDenied (minio/minio#15157 is its 404
		// twin), so one such answer is tried once more: a real denial costs 50 ms more and then stands.
		resp := minio.ToErrorResponse(err)
		transport := resp.StatusCode == 0 && isTransportError(err)
		prunedDir := resp.Code == "ExistingObjectIsDirectory" || resp.Code == "AccessDenied" && attempt == 0
		if !prunedDir && (!opts.CreateOnly || resp.StatusCode != http.StatusConflict && !transport) {
			break
		}
		ambiguous = ambiguous || transport
		if _, serr := seeker.Seek(0, io.SeekStart); serr != nil {
			break
		}
		select {
		case <-ctx.Done():
			return store.ObjectInfo{}, fmt.Errorf("put %s: %w", key, ctx.Err())
		case <-time.After(time.Duration(50*(attempt+1)) * time.Millisecond):
		}
	}
	if err != nil && ambiguous && minio.ToErrorResponse(err).StatusCode == http.StatusPreconditionFailed {
		// An earlier attempt may be the one that created the object. It is ours if it holds our bytes.
		if info, ok := s.landed(ctx, key, seeker); ok {
			return info, nil
		}
	}
	if err != nil {
		return store.ObjectInfo{}, s.wrap("put", key, err, opts.CreateOnly)
	}
	return store.ObjectInfo{Key: key, Size: up.Size, ETag: strings.Trim(up.ETag, `"`), LastModified: up.LastModified}, nil
}

// landed reports whether the object under key holds exactly the bytes of body, comparing the stored ETag
// with the body's MD5 (the ETag of a single-part upload on S3, MinIO and versitygw). Identical content
// written by another writer also counts, which is what deterministic keys need.
func (s *Store) landed(ctx context.Context, key string, body io.Seeker) (store.ObjectInfo, bool) {
	r, ok := body.(io.Reader)
	if !ok {
		return store.ObjectInfo{}, false
	}
	if _, err := body.Seek(0, io.SeekStart); err != nil {
		return store.ObjectInfo{}, false
	}
	h := md5.New()
	if _, err := io.Copy(h, r); err != nil {
		return store.ObjectInfo{}, false
	}
	st, err := s.client.StatObject(ctx, s.bucket, s.prefix+key, minio.StatObjectOptions{})
	if err != nil || strings.Trim(st.ETag, `"`) != hex.EncodeToString(h.Sum(nil)) {
		return store.ObjectInfo{}, false
	}
	return s.info(key, st), true
}

// maxConns bounds the connections to the store's endpoint, busy and idle.
const maxConns = 64

func isTransportError(err error) bool {
	var netErr net.Error
	return errors.As(err, &netErr) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, io.ErrUnexpectedEOF) || strings.Contains(err.Error(), "connection reset")
}

// List implements store.Store.
func (s *Store) List(ctx context.Context, prefix, startAfter string, limit int) (store.Page, error) {
	if limit <= 0 {
		limit = store.DefaultListLimit
	}
	lopts := minio.ListObjectsOptions{Prefix: s.prefix + prefix, Recursive: true, MaxKeys: min(limit+1, 1000)}
	if startAfter != "" {
		lopts.StartAfter = s.prefix + startAfter
	}
	lctx, cancel := context.WithCancel(ctx)
	defer cancel() // stops the listing goroutine once we have enough
	var page store.Page
	for o := range s.client.ListObjectsIter(lctx, s.bucket, lopts) {
		if o.Err != nil {
			return store.Page{}, s.wrap("list", prefix, o.Err, false)
		}
		if len(page.Objects) == limit {
			page.Truncated = true
			break
		}
		page.Objects = append(page.Objects, s.info(strings.TrimPrefix(o.Key, s.prefix), o))
	}
	if err := ctx.Err(); err != nil {
		return store.Page{}, fmt.Errorf("list %s: %w", prefix, err)
	}
	return page, nil
}

// Delete implements store.Store.
func (s *Store) Delete(ctx context.Context, key string) error {
	if err := store.ValidateKey(key); err != nil {
		return fmt.Errorf("delete: %w", err)
	}
	if err := s.client.RemoveObject(ctx, s.bucket, s.prefix+key, minio.RemoveObjectOptions{}); err != nil {
		if errors.Is(s.wrap("delete", key, err, false), store.ErrNotFound) {
			return nil
		}
		return s.wrap("delete", key, err, false)
	}
	return nil
}

func (s *Store) info(key string, o minio.ObjectInfo) store.ObjectInfo {
	return store.ObjectInfo{Key: key, Size: o.Size, ETag: strings.Trim(o.ETag, `"`), LastModified: o.LastModified}
}

// wrap turns a minio-go error into a store sentinel where one applies, and otherwise into a message that
// tells an operator what to fix.
func (s *Store) wrap(op, key string, err error, createOnly bool) error {
	if ctxErr := contextError(err); ctxErr != nil {
		return fmt.Errorf("%s %s: %w", op, key, ctxErr)
	}
	resp := minio.ToErrorResponse(err)
	switch {
	case resp.StatusCode == http.StatusNotModified:
		return fmt.Errorf("%s %s: %w", op, key, store.ErrNotModified)
	case resp.Code == minio.NoSuchKey || resp.Code == "NoSuchObject":
		return fmt.Errorf("%s %s: %w", op, key, store.ErrNotFound)
	case resp.StatusCode == http.StatusPreconditionFailed && createOnly:
		return fmt.Errorf("%s %s: %w", op, key, store.ErrExists)
	case resp.StatusCode == http.StatusPreconditionFailed:
		return fmt.Errorf("%s %s: %w", op, key, store.ErrPreconditionFailed)
	case resp.Code == minio.NoSuchBucket:
		return fmt.Errorf("%s %s: bucket %q does not exist on %s (create it, or run `pulse init`): %w", op, key, s.bucket, s.endpoint, err)
	case resp.Code == "InvalidAccessKeyId" || resp.Code == "SignatureDoesNotMatch" || resp.Code == "AccessDenied" || resp.StatusCode == http.StatusForbidden:
		return fmt.Errorf("%s %s: %s refused the credentials (check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY and the bucket policy): %w", op, key, s.endpoint, err)
	case resp.StatusCode == http.StatusNotFound && op == "get":
		return fmt.Errorf("%s %s: %w", op, key, store.ErrNotFound)
	}
	var netErr net.Error
	if errors.As(err, &netErr) || strings.Contains(err.Error(), "connection refused") {
		return fmt.Errorf("%s %s: cannot reach S3 endpoint %s: %w", op, key, s.endpoint, err)
	}
	return fmt.Errorf("%s %s: %w", op, key, err)
}

func contextError(err error) error {
	switch {
	case errors.Is(err, context.Canceled):
		return context.Canceled
	case errors.Is(err, context.DeadlineExceeded):
		return context.DeadlineExceeded
	}
	return nil
}
