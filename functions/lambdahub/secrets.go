package lambdahub

import (
	"context"
	"fmt"
	"os"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/ssm"

	"github.com/pulsehq/pulse/functions/hubkey"
)

// IAMActions are what LoadKeys calls for a key in Secrets Manager, the way infra/aws/template.yaml
// deploys it (its test checks the grant). A key in SSM Parameter Store needs ssm:GetParameter instead,
// and a secret or parameter under a customer-managed KMS key needs kms:Decrypt on that key too.
var IAMActions = []string{"secretsmanager:GetSecretValue"}

// LoadKeys finds a function's signing keys, never in the bucket: $PULSE_SIGNING_KEY (PEM, or a path
// in the function's package), else the Secrets Manager secret EnvKeySecret names, else the SSM
// SecureString parameter EnvKeyParameter names. A secret holds the current key, then optionally the
// previous one (hubkey.Parse). The AWS clients use awsCfg, or when it is nil the SDK's default
// chain (the function's role, environment, shared config).
func LoadKeys(ctx context.Context, awsCfg *aws.Config) (*hubkey.Keys, error) {
	if os.Getenv(hubkey.EnvVar) != "" {
		return hubkey.Load("")
	}
	secret, param := os.Getenv(EnvKeySecret), os.Getenv(EnvKeyParameter)
	if secret == "" && param == "" {
		return nil, errNoKey
	}
	cfg := awsCfg
	if cfg == nil {
		c, err := awsconfig.LoadDefaultConfig(ctx)
		if err != nil {
			return nil, fmt.Errorf("aws configuration for the signing key: %w", err)
		}
		cfg = &c
	}
	var text string
	if secret != "" {
		out, err := secretsmanager.NewFromConfig(*cfg).GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(secret)})
		if err != nil {
			return nil, fmt.Errorf("%s=%s: read the secret (the function's role needs secretsmanager:GetSecretValue on it): %w", EnvKeySecret, secret, err)
		}
		switch {
		case out.SecretString != nil:
			text = *out.SecretString
		default:
			text = string(out.SecretBinary)
		}
	} else {
		out, err := ssm.NewFromConfig(*cfg).GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String(param), WithDecryption: aws.Bool(true)})
		if err != nil {
			return nil, fmt.Errorf("%s=%s: read the parameter (the function's role needs ssm:GetParameter on it, and kms:Decrypt on its key): %w", EnvKeyParameter, param, err)
		}
		if out.Parameter == nil || out.Parameter.Value == nil {
			return nil, fmt.Errorf("%s=%s: the parameter has no value", EnvKeyParameter, param)
		}
		text = *out.Parameter.Value
	}
	keys, err := hubkey.Parse([]byte(text))
	if err != nil {
		name := EnvKeySecret + "=" + secret
		if secret == "" {
			name = EnvKeyParameter + "=" + param
		}
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return keys, nil
}
